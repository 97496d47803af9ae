"""Accuracy of subnets: measured data sets (collect), gene features, predictors fitted to them, and
the compiled form a search scores with (``compiled``, ``tree_ensemble``); once-for-all's own MLP
predictors, loaded from its ``.pth`` files (``ofa_predictor``)."""
