"""Copies RabbitMQ definitions without some queues and their bindings.

    python3 filter-definitions.py SRC DST SKIP

SKIP is a comma-separated list of queue names (empty: copy everything). Used by
ops/start-services.sh and ops/rabbitmq-cluster.sh: the test brokers get the topology of
definitions.json without the production gateway's queue, which no test gateway consumes and
which, bound to rix.records, would pile up every batch the test suite publishes.
"""

import json
import sys

src, dst, skip = sys.argv[1], sys.argv[2], set(filter(None, sys.argv[3].split(",")))
with open(src, encoding="utf-8") as f:
    d = json.load(f)
d["queues"] = [q for q in d.get("queues", []) if q["name"] not in skip]
d["bindings"] = [
    b
    for b in d.get("bindings", [])
    if not (b.get("destination_type") == "queue" and b["destination"] in skip)
]
with open(dst, "w", encoding="utf-8") as f:
    json.dump(d, f, indent=2)
