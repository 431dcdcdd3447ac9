"""Offline quality metrics of generated images, measured in a per-dataset domain classifier's features.

classifier (the CNN and its recipe) -> cache (one trained classifier per dataset and settings)
-> frechet, kernel, manifold, classes, memorization, cas, per_class (one metric family each, on features or
images) -> report (all of them for one generator, against the dataset's real splits).
"""
