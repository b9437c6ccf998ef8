"""Classification: field catalog, content detectors, prompt detection. No Kafka import."""

import router.config.models  # noqa: F401 -- load the root config first: it imports this package's config
from router.classify.classifier import Classifier
from router.classify.model import Category, Classification, Finding, Level

__all__ = ["Category", "Classification", "Classifier", "Finding", "Level"]
