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
