"""``shadowlane report``: a promote / hold / retrain report over a time range of the topics.

Two sources meet in one report: the **shadow** comparisons of a candidate on the compare topic
(paired per request: prod vs candidate accuracy against gold, ΔS vs the noise floor, latency,
disagreements) and the **A/B** exposures of a rollout flag on the requests topic (served answers
graded offline against gold, latency and errors per arm, the SRM check). ``rows`` turns records
into the report's own rows, ``analysis`` computes the statistics (pure: rows in, a frozen
``Report`` out), ``render_md`` / ``render_html`` / ``svg`` write it, ``collect`` reads the range
from Kafka, and ``shadowlane.cli.report_cmd`` is the command.
"""
