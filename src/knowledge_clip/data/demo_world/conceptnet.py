# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The ConceptNet 5.7 writer: `conceptnet/conceptnet-assertions-5.7.0.csv.gz`, the assertions of `facts.json` and those
about every shape, colour and coloured shape, with the non-English and ExternalURL rows a loader must skip.
"""

import gzip
import json
import math
import random
from pathlib import Path

from .captions import article
from .facts import FACTS
from .scenes import COLOURS, SHAPES

# Assertions are `[relation, start, end, source]`; the source picks dataset, licence, contributors and weight.
_ENGLISH = FACTS["conceptnet"]["english"]
# Rows a loader reading English must skip: another language at one end (including Middle English, `/c/enm/`,
# which a prefix test on "/c/en" wrongly accepts) ...
_NON_ENGLISH = FACTS["conceptnet"]["non_english"]
# ... and links to web pages.
_EXTERNAL_URLS = FACTS["conceptnet"]["external_urls"]
_CONTRIBUTORS = ("alice", "bob", "carol", "dave", "erin")


def _concept_label(uri: str) -> str:
    return uri.split("/")[3].replace("_", " ")


def _assertion_line(rng: random.Random, relation: str, start: str, end: str, source: str) -> str:
    """One assertion row: URI, relation, start, end and the JSON info column, tab separated (ConceptNet 5.7)."""
    rel = f"/r/{relation}"
    info: dict = {}
    if source == "conceptnet":
        num_sources = rng.choice((1, 1, 2, 3))
        info["dataset"], info["license"] = "/d/conceptnet/4/en", "cc:by/4.0"
        info["sources"] = [
            {"activity": "/s/activity/omcs/omcs1_possibly_free_text", "contributor": f"/s/contributor/omcs/{name}"}
            for name in rng.sample(_CONTRIBUTORS, num_sources)
        ]
        info["weight"] = round(2 * math.sqrt(max(num_sources - 1, 1)) + min(num_sources, 2) - 2, 3)
        verb = {"HasA": "has", "NotHasProperty": "does not have", "RelatedTo": "is related to"}.get(relation, "is")
        surface_start, surface_end = article(_concept_label(start)), _concept_label(end)
        if relation == "IsA":
            surface_end = article(surface_end)
        if relation in ("DistinctFrom", "Antonym"):
            verb, surface_start = "is not", _concept_label(start)
        info["surfaceEnd"], info["surfaceStart"] = surface_end, surface_start
        info["surfaceText"] = f"[[{surface_start}]] {verb} [[{surface_end}]]"
    elif source == "wordnet":
        info["dataset"], info["license"], info["weight"] = "/d/wordnet/3.1", "cc:by-sa/4.0", 2.0
        info["sources"] = [{"contributor": "/s/resource/wordnet/rdf/3.1"}]
    elif source == "verbosity":
        info["dataset"], info["license"] = "/d/verbosity", "cc:by/4.0"
        info["sources"] = [{"contributor": "/s/resource/verbosity"}]
        info["weight"] = round(rng.uniform(0.1, 1.0), 3)
    elif source == "dbpedia":
        info["dataset"], info["license"], info["weight"] = "/d/dbpedia/en", "cc:by-sa/4.0", 0.5
        info["sources"] = [{"contributor": "/s/resource/dbpedia/2015/en"}]
    else:
        language = source.split("/")[1]
        info["dataset"], info["license"], info["weight"] = f"/d/wiktionary/{language}", "cc:by-sa/4.0", 1.0
        info["sources"] = [{"contributor": f"/s/resource/wiktionary/{language}", "process": "/s/process/wikiparsec/2"}]
    uri = f"/a/[{rel}/,{start}/,{end}/]"
    return "\t".join((uri, rel, start, end, json.dumps(info, ensure_ascii=False, sort_keys=True)))


def fact_table_assertions() -> list[tuple[str, str, str]]:
    """`(relation, start, end)` of the fact table's English assertions, the ends as their labels ("fire truck")."""
    return [(relation, _concept_label(start), _concept_label(end)) for relation, start, end, _ in _ENGLISH]


def write_conceptnet(root: Path, seed: int) -> dict:
    """Writes `conceptnet/conceptnet-assertions-5.7.0.csv.gz` (gzip, no header, sorted by assertion URI)."""
    rng = random.Random(f"demo-world:{seed}:conceptnet")
    english = list(_ENGLISH)
    english += [("IsA", f"/c/en/{shape}/n", "/c/en/shape/n", "wordnet") for shape in SHAPES]
    english += [("IsA", f"/c/en/{colour}/n", "/c/en/color/n", "wordnet") for colour in COLOURS]
    english += [("IsA", f"/c/en/{size}/a", "/c/en/size/n", "wiktionary/en") for size in ("big", "small", "large")]
    for colour in COLOURS:
        for shape in SHAPES:
            english.append(("IsA", f"/c/en/{colour}_{shape}", f"/c/en/{shape}", "conceptnet"))
            english.append(("HasProperty", f"/c/en/{colour}_{shape}", f"/c/en/{colour}", "conceptnet"))
    rows = english + _NON_ENGLISH + _EXTERNAL_URLS
    lines = sorted(_assertion_line(rng, *row) for row in rows)
    path = root / "conceptnet" / "conceptnet-assertions-5.7.0.csv.gz"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as stream:
        stream.write("".join(line + "\n" for line in lines).encode("utf-8"))
    return {
        "conceptnet_rows": len(lines),
        "conceptnet_english_rows": len(english),
        "conceptnet_non_english_rows": len(_NON_ENGLISH),
        "conceptnet_external_url_rows": len(_EXTERNAL_URLS),
    }
