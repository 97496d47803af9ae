"""Accuracy of subnets: measured data sets (collect), gene features, and predictors fitted to them."""
