# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
The fact tables the writers publish, read from the package's `facts.json`: COCO licences (as the published file lists
them), the WordNet synsets of the Visual Genome predicates, the ConceptNet assertions (`[relation, start, end,
source]`) and the VisualSem glosses (name -> language -> text), each under the name of its format.
"""

import json
from importlib import resources

FACTS: dict[str, dict] = json.loads(resources.files(__package__).joinpath("facts.json").read_text(encoding="utf-8"))
