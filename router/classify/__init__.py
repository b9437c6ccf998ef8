"""Classification: field catalog, content detectors, prompt detection. No Kafka import."""

from router.classify.classifier import Classifier
from router.classify.model import Category, Classification, Finding, Level

__all__ = ["Category", "Classification", "Classifier", "Finding", "Level"]
