"""A stock OAI-PMH harvester (Sickle) against the gateway's /oai, for gateway/tests/oai.rs.

    harvester.py BASE_URL STATE_FILE GET|POST [FROM UNTIL]

Harvests ListRecords in the native `rix` format (deleted records included) — everything, or
incrementally with from/until — into STATE_FILE, a JSON object {identifier: record | null}
(null: deleted), kept between runs as a harvester keeps its copy. Each record is read back from
its rix XML into the JSON the gateway's API gives. Prints one summary line; exits non-zero on
any protocol error other than noRecordsMatch.
"""

import json
import os
import re
import sys

from sickle import Sickle
from sickle.oaiexceptions import NoRecordsMatch

RIX = "{https://example.invalid/rix/oai/rix/1.0}"
OAI = "{http://www.openarchives.org/OAI/2.0/}"


def value(element):
    """One rix JSON-in-XML element as the JSON value it carries."""
    tag = element.tag[len(RIX):]
    if tag == "map":
        return {child.get("key"): value(child) for child in element}
    if tag == "array":
        return [value(child) for child in element]
    if tag == "string":
        return element.text or ""
    if tag == "number":
        text = element.text
        return int(text) if re.fullmatch(r"-?[0-9]+", text) else float(text)
    if tag == "boolean":
        return element.text == "true"
    if tag == "null":
        return None
    raise ValueError(f"unexpected element {element.tag}")


def main():
    base_url, state_file, method = sys.argv[1], sys.argv[2], sys.argv[3]
    window = {}
    if len(sys.argv) == 6:
        window = {"from": sys.argv[4], "until": sys.argv[5]}
    state = {}
    if os.path.exists(state_file):
        with open(state_file, encoding="utf-8") as f:
            state = json.load(f)

    sickle = Sickle(base_url, http_method=method)
    identify = sickle.Identify()
    assert identify.deletedRecord == "persistent", identify.deletedRecord
    assert identify.granularity == "YYYY-MM-DDThh:mm:ssZ", identify.granularity
    formats = [f.metadataPrefix for f in sickle.ListMetadataFormats()]
    assert formats == ["oai_dc", "rix"], formats

    harvested = deleted = 0
    try:
        for record in sickle.ListRecords(metadataPrefix="rix", ignore_deleted=False, **window):
            identifier = record.header.identifier
            harvested += 1
            if record.header.deleted:
                deleted += 1
                state[identifier] = None
                continue
            entry = record.xml.find(f"{OAI}metadata/{RIX}entry")
            body = entry.find(f"{RIX}record")[0]
            state[identifier] = value(body)
    except NoRecordsMatch:
        pass

    with open(state_file, "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False)
    print(f"harvested {harvested} records ({deleted} deleted); holding "
          f"{sum(1 for r in state.values() if r is not None)}")


if __name__ == "__main__":
    main()
