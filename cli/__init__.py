"""The roof: the `skewless` command line. It only wires each room's commands module (and the
two commands that span rooms: `build-tables` and `quickstart`); nothing imports it."""
