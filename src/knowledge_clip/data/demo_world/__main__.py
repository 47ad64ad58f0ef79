# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""`python -m knowledge_clip.data.demo_world OUT_DIR [--seed 0] [--size default] [--preview PNG]`."""

from .world import main

if __name__ == "__main__":
    main()
