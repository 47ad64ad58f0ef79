# Copyright 2026 The knowledge-clip authors. Licensed under the Apache License, Version 2.0.
"""
`TrainingMeter.log` across processes, on the accelerator of `create_accelerator`. Run by
`tests/test_training_meter.py`:

    accelerate launch --multi_gpu --num_processes 2 tests/distributed_meter.py OUTPUT_DIR

Process 0 adds `loss` and `g2e_loss` twice, process 1 adds `loss` once and no `g2e_loss`: the meter's one reduction
must still be the same collective on both. Each process writes its record and its accelerator's distributed type to
`OUTPUT_DIR/record_<rank>.json`.
"""

import faulthandler
import json
import os
import sys

import torch

from knowledge_clip.training import LOSS_NAMES, TrainingMeter, create_accelerator


def main() -> None:
    # A process whose peer never joins a collective would wait forever: print every stack and exit instead.
    faulthandler.dump_traceback_later(120, exit=True)
    output_dir = sys.argv[1]
    accelerator = create_accelerator(output_dir)
    meter = TrainingMeter(accelerator, LOSS_NAMES, max_steps=4, global_batch_size=6)
    if accelerator.process_index == 0:
        for _ in range(2):
            meter.add_losses({"loss": torch.tensor(1.0), "g2e_loss": torch.tensor(2.0)})
    else:
        meter.add_losses({"loss": torch.tensor(3.0), "g2e_loss": None})
    meter.step()
    record = meter.log(step=1, epoch=0)
    meter.close()
    with open(os.path.join(output_dir, f"record_{accelerator.process_index}.json"), "w", encoding="utf-8") as file:
        json.dump(
            {
                "record": record,
                "distributed_type": accelerator.distributed_type.value,
                "num_processes": accelerator.num_processes,
            },
            file,
        )
    accelerator.wait_for_everyone()  # the teardown of examples/pretrain.py (docs/training.md, "Ending a run")
    accelerator.end_training()


if __name__ == "__main__":
    main()
