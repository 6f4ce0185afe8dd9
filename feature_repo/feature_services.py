"""Feature services: the one list of a model's features. Training and serving both name it.

A new version of a model's feature list is a new service (`..._v2`), never an edit of a
service a registered model was trained on.
"""

from feast import FeatureService
from feature_views import (
    aircraft_departures_today,
    aircraft_profile,
    carrier_departures_7d,
    carrier_profile,
    destination_profile,
    origin_departures_recent,
    route_departures_7d,
    weather_hourly,
)
from on_demand_views import flight_request_features_view

delay_model_v1 = FeatureService(
    name="delay_model_v1",
    features=[
        flight_request_features_view,
        weather_hourly,
        origin_departures_recent,
        carrier_departures_7d,
        route_departures_7d,
        aircraft_departures_today,
        aircraft_profile,
        carrier_profile,
        destination_profile,
    ],
    description=(
        "Features of the departure-delay model: P(departure delay >= 15 min), asked for "
        "60 minutes before scheduled departure. Request fields: scheduled_departure, "
        "requested_at, distance; entity keys: origin, dest, carrier, tailnum."
    ),
    owner="delay-model@skewless.dev",
    tags={"model": "departure_delay", "version": "1", "label": "departed_late"},
)
