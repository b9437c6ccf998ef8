"""residency-router: keeps CRM change events inside the jurisdiction their data belongs to."""

__version__ = "0.1.0"
