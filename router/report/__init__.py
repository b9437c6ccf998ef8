"""The evidence report (``residency-router report``): figures a compliance team can hand over,
computed only from the verified audit trail. ``collect`` aggregates (pure), ``render_html`` and
``render_data`` write the page, JSON and CSV (pure), ``kafka`` reads the trail and topic configs."""
