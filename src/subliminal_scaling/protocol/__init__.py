"""The experiment protocol: extracted from the reference checkout at run time, validated, and read
(rules/generate.smk: extract_protocol)."""
