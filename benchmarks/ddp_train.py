"""The training script bench_ddp.py runs both ways: a small MLP trained with PyTorch
DistributedDataParallel over gloo. It reads the torchrun environment (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), which both torchrun and the service's pyTorch toolkit set.

    ddp_train.py [--steps 300]
"""

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--batch", type=int, default=256)
parser.add_argument("--hidden", type=int, default=256)
args = parser.parse_args()

torch.set_num_threads(1)  # both ranks share the machine's cores, the same way under both launchers
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(
    torch.nn.Sequential(
        torch.nn.Linear(64, args.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(args.hidden, args.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(args.hidden, 10),
    )
)
optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
generator = torch.Generator().manual_seed(rank)
inputs = torch.randn(args.batch, 64, generator=generator)
labels = torch.randint(0, 10, (args.batch,), generator=generator)
started = time.time()
for _step in range(args.steps):
    optimiser.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(inputs), labels)
    loss.backward()
    optimiser.step()
dist.barrier()
print(f"rank {rank}/{world}: {args.steps} steps in {time.time() - started:.2f} s, loss {loss.item():.4f}", flush=True)
dist.destroy_process_group()
# Skip interpreter teardown: gloo's threads can abort it ("terminate called without an active
# exception"), which would fail a run for reasons that have nothing to do with the launcher.
sys.stdout.flush()
os._exit(0)
