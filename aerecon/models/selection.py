"""Which coefficients of a [channels, frames] latent a sparse code keeps, and how it packs them.

Each selector keeps at most `numbers` numbers per segment, positions counted, and passes
gradients to the kept values only (as in k-sparse autoencoders):
- `TopK`: the numbers / 2 largest coefficients, each with its position.
- `Runs`: runs of consecutive frames in one channel, each run one descriptor (channel, first
  frame and length in one number) and its values. Sustained partials fill whole runs, so a
  position is paid once for many values. The runs are the exact minimiser of the dropped energy
  plus a price per number, found per segment by dynamic programming along each channel, with the
  price set by search so that the code fills the budget.
"""

import math

import torch
from torch import nn

from aerecon.models.net import VALUE_BITS, position_bits


class All(nn.Module):
    """Every coefficient, as numbers (no positions): a dense latent, for a quantized bottleneck to round."""

    def __init__(self, numbers: int):
        super().__init__()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def pack(self, z: torch.Tensor) -> torch.Tensor:
        return z.flatten(1)

    def unpack(self, code: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        return code.view(code.shape[0], *shape)

    def code_bits(self, shape: tuple[int, int]) -> int:
        return VALUE_BITS * math.prod(shape)


class TopK(nn.Module):
    def __init__(self, numbers: int):
        super().__init__()
        self.numbers, self.k = numbers, numbers // 2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.flatten(1)
        index = flat.abs().topk(self.k, dim=1).indices
        kept = torch.zeros_like(flat, dtype=torch.bool).scatter(1, index, torch.ones_like(index, dtype=torch.bool))
        return (flat * kept).view_as(z)

    def pack(self, z: torch.Tensor) -> torch.Tensor:
        """The kept coefficients' values, then their positions in the grid: [B, 2k]."""
        flat = z.flatten(1)
        position = flat.abs().topk(self.k, dim=1).indices.sort(dim=1).values
        return torch.cat([flat.gather(1, position), position.to(flat.dtype)], dim=1)  # positions < 2**24: exact

    def unpack(self, code: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        k = self.k
        flat = code.new_zeros(code.shape[0], math.prod(shape)).scatter(1, code[:, k:].round().long(), code[:, :k])
        return flat.view(code.shape[0], *shape)

    def code_bits(self, shape: tuple[int, int]) -> int:
        return self.k * (VALUE_BITS + position_bits(math.prod(shape)))


class Runs(nn.Module):
    """Runs of consecutive frames per channel; a code is [runs R, R descriptors, the values, zeros]."""

    candidates, rounds = 3, 5  # prices tried at once per round; each round narrows the search 4 times

    def __init__(self, numbers: int):
        super().__init__()
        self.numbers = numbers

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            kept = self.choose(z.float().square())  # float32 even under 16-bit training
        return z * kept

    def choose(self, energy: torch.Tensor) -> torch.Tensor:
        """The kept mask [B, C, T] for energies [B, C, T], at most numbers - 1 numbers (one says R)."""
        b, c, t = energy.shape
        rows, flat = energy.reshape(b * c, t), energy.flatten(1)
        tiny = torch.finfo(energy.dtype).tiny
        # Log prices bracketing the lowest price that fits. Below half the energy of the budget-th
        # largest coefficient, more coefficients than the budget are each worth a run of their own;
        # above the total energy over the budget, fewer numbers are kept than fit, as each kept run
        # holds more energy than its price.
        budget = self.numbers - 1
        low = (
            (flat.topk(budget, 1).values[:, -1] / 2 if budget < c * t else torch.zeros_like(flat[:, 0]))
            .clamp_min(tiny)
            .log()
        )
        high = torch.maximum((flat.sum(1) / max(budget, 1)).clamp_min(tiny).log(), low + 1e-3)
        steps = torch.arange(1, self.candidates + 1, device=energy.device)[:, None] / (self.candidates + 1)
        for _ in range(self.rounds):
            grid = torch.lerp(low[None], high[None], steps)  # [G, B], strictly between low and high
            rate = self.runs(grid.exp().repeat_interleave(c, 1), rows)
            fits = rate.view(self.candidates, b, c).sum(2) <= budget
            bounds = torch.cat([low[None], grid, high[None]])
            first = torch.cat([fits, fits.new_ones(1, b)]).int().argmax(0) + 1  # the lowest price that fits
            high = bounds.gather(0, first[None])[0]
            low = bounds.gather(0, (first - 1)[None])[0]
        take, start = self.runs(high.exp().repeat_interleave(c)[None], rows, backtrack=True)
        return self.backtrack(take[:, 0], start[:, 0]).view(b, c, t)

    @staticmethod
    def runs(price: torch.Tensor, energy: torch.Tensor, backtrack: bool = False):
        """Per row of `energy` [N, T] and price [G, N]: the numbers [G, N] (values + descriptors) of
        the runs minimising dropped energy + price x numbers; with `backtrack`, instead, whether frame
        i ends a run and where that run starts ([T, G, N] each)."""
        g, n = price.shape
        frames = energy.shape[1]
        energy = energy.t().contiguous()
        multiple = price * torch.arange(frames + 2, device=price.device, dtype=price.dtype)[:, None, None]
        cost = price.new_zeros(g, n)  # the best over frames before i
        rate = price.new_zeros(g, n)
        open_cost, open_rate = cost.clone(), rate.clone()  # min over s <= i of cost[s] - price s
        if backtrack:
            open_start = torch.zeros(g, n, dtype=torch.long, device=energy.device)
            take = torch.empty(frames, g, n, dtype=torch.bool, device=energy.device)
            start = torch.empty(frames, g, n, dtype=torch.long, device=energy.device)
        for i in range(1, frames + 1):
            drop = cost + energy[i - 1]
            run = open_cost + multiple[i + 1]  # a run from open_start to i - 1: i - s values, 1 descriptor
            ends = run < drop
            cost = torch.minimum(run, drop)
            rate = torch.where(ends, open_rate + (i + 1), rate)
            shifted = cost - multiple[i]
            better = shifted < open_cost
            open_cost = torch.minimum(open_cost, shifted)
            open_rate = torch.where(better, rate - i, open_rate)
            if backtrack:
                take[i - 1], start[i - 1] = ends, open_start
                open_start = open_start.masked_fill(better, i)
        return (take, start) if backtrack else rate

    @staticmethod
    def backtrack(take: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """The kept mask [N, T] from `runs`' tables for one price ([T, N] each)."""
        frames, n = take.shape
        rows = torch.arange(n, device=take.device)
        edges = torch.zeros(n, frames + 1, dtype=torch.long, device=take.device)
        at = torch.full((n,), frames, device=take.device)  # frames before `at` are still to decide
        for _ in range(frames):
            last = (at - 1).clamp_min(0)
            ends = take[last, rows] & (at > 0)
            begin = start[last, rows]
            edges[rows, torch.where(ends, begin, frames)] += ends.long()
            edges[rows, last + 1] -= ends.long()
            at = torch.where(ends, begin, (at - 1).clamp_min(0))
        return edges.cumsum(1)[:, :frames] > 0

    def pack(self, z: torch.Tensor) -> torch.Tensor:
        """[R, descriptors (channel x T + first frame) x T + length - 1, values in grid order, zeros]."""
        b, c, t = z.shape
        slots = self.numbers - 1
        kept = (z != 0).flatten(1)
        index = torch.arange(c * t, device=z.device).expand(b, -1)
        none = kept.new_zeros(b, 1)
        first = kept & ~(torch.cat([none, kept[:, :-1]], 1) & (index % t != 0))
        last = kept & ~(torch.cat([kept[:, 1:], none], 1) & ((index + 1) % t != 0))
        never = c * t  # sorts after every real position

        def ordered(flag: torch.Tensor) -> torch.Tensor:  # the first `slots` flagged positions, then `never`
            position = torch.where(flag, index, never).sort(1).values[:, :slots]
            return torch.nn.functional.pad(position, (0, slots - position.shape[1]), value=never)

        starts, ends, position = ordered(first), ordered(last), ordered(kept)
        runs = first.sum(1)
        descriptor = torch.where(starts < never, starts * t + ends - starts, 0)
        values = z.flatten(1).gather(1, position.clamp_max(never - 1)) * (position < never)
        slot = torch.arange(slots, device=z.device).expand(b, -1)
        in_use = torch.where(slot < runs[:, None], slot, slots)
        code = z.new_zeros(b, slots + slots).scatter(1, in_use, descriptor.to(z.dtype))
        code = code.scatter_add(1, (runs[:, None] + slot).clamp_max(2 * slots - 1), values)
        return torch.cat([runs[:, None].to(z.dtype), code[:, :slots]], 1)  # descriptors < 2**24: exact

    def unpack(self, code: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        c, t = shape
        b, slots = code.shape[0], self.numbers - 1
        runs = code[:, 0].round().long()
        slot = torch.arange(slots, device=code.device).expand(b, -1)
        is_run = slot < runs[:, None]
        descriptor = torch.where(is_run, code[:, 1:].round().long(), 0)
        first, length = descriptor // t, torch.where(is_run, descriptor % t + 1, 0)
        offset = runs[:, None] + 1 + length.cumsum(1) - length  # where each run's values begin in the code
        step = torch.arange(t, device=code.device)
        valid = step < length[..., None]  # [B, slots, T]
        source = (offset[..., None] + step).clamp_max(slots)
        target = torch.where(valid, first[..., None] + step, c * t)
        values = code.gather(1, source.flatten(1)).view_as(source) * valid
        flat = code.new_zeros(b, c * t + 1).scatter_add(1, target.flatten(1), values.flatten(1))
        return flat[:, : c * t].view(b, c, t)

    def code_bits(self, shape: tuple[int, int]) -> int:
        """The longest code: as few runs as can hold numbers - 1 values and descriptors, each of the
        longest length, as values take more bits than descriptors."""
        c, t = shape
        runs = min(c, -(-(self.numbers - 1) // (t + 1)))
        values = min(self.numbers - 1 - runs, runs * t)
        return position_bits(self.numbers) + runs * position_bits(c * t * t) + values * VALUE_BITS
