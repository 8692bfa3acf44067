"""Adapter: write results/protocol.json from the reference checkout or a given protocol JSON."""

from subliminal_scaling.protocol.extract import extract_protocol
from subliminal_scaling.protocol.validate import load_protocol
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
p = snakemake.params  # noqa: F821
if p.protocol:
    protocol = load_protocol(p.protocol)
    log.info("protocol read from %s", p.protocol)
else:
    protocol = extract_protocol(p.reference_dir, p.defaults)
    log.info("protocol parsed from the reference checkout %s", p.reference_dir)
io.write_json(snakemake.output[0], protocol)  # noqa: F821
