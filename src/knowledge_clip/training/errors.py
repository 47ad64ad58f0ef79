# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""The exception of a bad training invocation."""

__all__ = ["TrainingConfigurationError"]


class TrainingConfigurationError(ValueError):
    """
    A training run was asked for something it cannot do: an unknown flag value, a missing file, a checkpoint that does
    not fit the run. The message is one line that names the flag or file at fault.

    `knowledge_clip.training` raises it and never exits; a script turns it into a one-line exit:

    ```python
    if __name__ == "__main__":
        try:
            main(sys.argv[1:])
        except TrainingConfigurationError as error:
            raise SystemExit(str(error)) from None
    ```
    """
