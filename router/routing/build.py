"""Build the routing core from a validated config: the one place ``run`` and ``simulate`` get it from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from router.config.models import RouterConfig
from router.errors import ConfigError
from router.residency.engine import PolicyEngine
from router.residency.resolver import Origin
from router.routing.evaluate import CoreEvaluator, Ingress

AVRO_DECODERS = ("auto", "confluent-avro", "salesforce-avro")


def schema_store_for(config: RouterConfig) -> Any:
    """The schema store Avro decoders read: the HTTP registry, ``schema_dir`` or the shipped schemas."""
    pipe = config.pipeline
    if pipe is not None and pipe.schema_registry_url:
        from router.ingest.schema_store import HttpSchemaRegistry  # noqa: PLC0415

        return HttpSchemaRegistry(pipe.schema_registry_url)
    from router.ingest.schema_store import DirectorySchemaStore, default_schema_store  # noqa: PLC0415

    if pipe is not None and pipe.schema_dir:
        return DirectorySchemaStore(pipe.schema_dir)
    return default_schema_store()


def decoder(name: str, options: dict[str, Any], config: RouterConfig, store: Any) -> Any:
    """A decoder by name with its validated options, the shared schema store and the size bound."""
    from router.ingest import decoder_for  # noqa: PLC0415

    opts = dict(options)
    if name in AVRO_DECODERS:
        opts.setdefault("schema_store", store)
    if config.pipeline is not None:
        opts.setdefault("max_bytes", config.pipeline.max_record_bytes)
    return decoder_for(name, **opts)


def ingress_of(config: RouterConfig, store: Any | None = None) -> dict[str, Ingress]:
    """Every ``pipeline.ingress[]`` entry as decoder + origin (jurisdiction, trust)."""
    if config.pipeline is None:
        raise ConfigError("the config needs a 'pipeline' section with 'ingress' topics (see examples/router.yaml)")
    store = store if store is not None else schema_store_for(config)
    out: dict[str, Ingress] = {}
    for entry in config.pipeline.ingress:
        out[entry.topic] = Ingress(
            decoder(entry.decoder, entry.decoder_options(), config, store),
            Origin(entry.topic, entry.jurisdiction, entry.trusted),
        )
    return out


def evaluator_for(
    config: RouterConfig, base_dir: Path | None = None, *, store: Any | None = None,
    ingress: dict[str, Ingress] | None = None,
) -> CoreEvaluator:
    """The core ``run`` uses: every ingress topic, the policy engine, the configured topics."""
    engine = PolicyEngine.from_config(config, base_dir)
    max_bytes = config.pipeline.max_record_bytes if config.pipeline is not None else 900_000
    return CoreEvaluator(
        ingress if ingress is not None else ingress_of(config, store),
        engine,
        configured={t.name for t in config.topics},
        max_bytes=max_bytes,
    )
