"""The prediction service: REST and gRPC faces over one predictor core (`serving.core`)."""
