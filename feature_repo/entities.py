"""Entities: the keys a prediction request carries, and that feature rows are joined on."""

from feast import Entity, ValueType

origin = Entity(
    name="origin",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="Departure airport, FAA code (EWR, JFK or LGA).",
)
dest = Entity(
    name="dest",
    join_keys=["dest"],
    value_type=ValueType.STRING,
    description="Destination airport, FAA code.",
)
carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    value_type=ValueType.STRING,
    description="Airline, two-letter IATA carrier code.",
)
aircraft = Entity(
    name="aircraft",
    join_keys=["tailnum"],
    value_type=ValueType.STRING,
    description="Aircraft, by tail number.",
)
flight = Entity(
    name="flight",
    join_keys=["flight_id"],
    value_type=ValueType.STRING,
    description="One scheduled flight (date, carrier, flight number, origin): the request_id "
    "a client sends with its prediction request, so that outcomes can be joined to it.",
)
