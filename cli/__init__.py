"""The roof: the `skewless` command line. It only wires each room's commands module (and the
two commands that span rooms: `build-tables` and `quickstart`); nothing imports it."""

from skewless.startup import skip_feast_type_checks

skip_feast_type_checks()  # before anything imports Feast: ~5 s off every command's start
