"""Adapter: the snapshot's report (what the `plots` figures were built from, and the fit)."""

from subliminal_scaling import io
from subliminal_scaling.logs import configure_logging
from subliminal_scaling.provenance import snapshot_markdown

configure_logging(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
text = snapshot_markdown(
    coverage=io.read_json(sm.input.coverage),
    fit=io.read_json(sm.input.fit),
    plots=list(sm.input.plots),
)
io.write_text(sm.output[0], text)
