"""Router configuration: typed models and the YAML loader."""

from router.config.loader import load_config, parse_config
from router.config.models import ClusterConfig, JurisdictionConfig, RouterConfig, TopicConfig

__all__ = ["ClusterConfig", "JurisdictionConfig", "RouterConfig", "TopicConfig", "load_config", "parse_config"]
