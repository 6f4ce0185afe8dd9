"""The registry aliases every room names: the model in production and the one gated next.
Their own module, free of MLflow, so that loading a model in a fresh process (the pipeline's
infra check, a service starting) does not import the registry to name them."""

CHAMPION, CHALLENGER = "champion", "challenger"
