"""The built-in demo dataset: seeded, EDM-like tracks written as real audio files.

Each track has a kick on every beat, a snare or clap on 2 and 4, hi-hats, a bassline and
chords or a lead, at 120-130 BPM in a random key, with a breakdown that drops the drums.
Everything is numpy; a given (seed, index) always renders the same track.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
from filelock import FileLock
from tqdm import tqdm

from aerecon.utils.errors import DataError

GENERATOR_VERSION = 1
MINOR, MAJOR = [0, 2, 3, 5, 7, 8, 10], [0, 2, 4, 5, 7, 9, 11]
PROGRESSIONS = [[0, 5, 2, 6], [0, 3, 4, 0], [5, 3, 0, 4], [0, 6, 5, 4]]  # scale degrees


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _decay(n: int, seconds: float, sr: int) -> np.ndarray:
    return np.exp(-np.arange(n) / (seconds * sr))


def _saw(freq: float, n: int, sr: int, harmonics: int) -> np.ndarray:
    """Band-limited sawtooth: additive partials up to `harmonics` (and below Nyquist)."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k in range(1, harmonics + 1):
        if k * freq < sr / 2:
            out += np.sin(2 * np.pi * k * freq * t) / k
    return out


def _square(freq: float, n: int, sr: int, harmonics: int) -> np.ndarray:
    t = np.arange(n) / sr
    return sum(np.sin(2 * np.pi * k * freq * t) / k for k in range(1, 2 * harmonics, 2) if k * freq < sr / 2)


def _add(track: np.ndarray, sound: np.ndarray, start: int) -> None:
    end = min(len(track), start + len(sound))
    if start < end:
        track[start:end] += sound[: end - start]


def _kick(sr, rng):
    n = int(0.35 * sr)
    pitch = 45 + 110 * _decay(n, 0.03, sr)
    return np.sin(2 * np.pi * np.cumsum(pitch) / sr) * _decay(n, 0.12, sr)


def _snare(sr, rng):
    n = int(0.2 * sr)
    tone = np.sin(2 * np.pi * 185 * np.arange(n) / sr) * _decay(n, 0.03, sr)
    noise = np.diff(rng.standard_normal(n + 1)) * 0.35 * _decay(n, 0.06, sr)
    return 0.5 * tone + noise


def _clap(sr, rng):
    n = int(0.25 * sr)
    noise = np.diff(rng.standard_normal(n + 1)) * 0.3
    env = sum(_decay(n, 0.008, sr) * (np.arange(n) >= int(d * sr)) * np.exp(d * 50) for d in (0, 0.011, 0.022))
    env += _decay(n, 0.05, sr) * (np.arange(n) >= int(0.022 * sr))
    return noise * np.minimum(env, 1.0)


def _hat(sr, rng, open_hat=False):
    n = int((0.18 if open_hat else 0.05) * sr)
    noise = np.diff(np.diff(rng.standard_normal(n + 2)))  # second difference: a steep high-pass
    return 0.12 * noise * _decay(n, 0.06 if open_hat else 0.012, sr)


def _add_beat(
    drums: np.ndarray,
    t: int,
    in_bar: int,
    kick: np.ndarray,
    backbeat: np.ndarray,
    hat_step: float,
    beat: float,
    sr: int,
    rng: np.random.Generator,
) -> None:
    """One beat of drums at sample t: the kick, the backbeat on 2 and 4, and the hi-hats."""
    _add(drums, kick, t)
    if in_bar in (1, 3):
        _add(drums, backbeat, t)
    for step in np.arange(0, 1, hat_step):
        if hat_step == 0.25 or step == 0.5:
            _add(drums, _hat(sr, rng, open_hat=(step == 0.5 and in_bar == 3)), t + int(step * beat * sr))


def render_track(index: int, seed: int, seconds: float, sr: int) -> tuple[np.ndarray, dict]:
    """One demo track as float32 in [-1, 1], and a description of what is in it."""
    rng = np.random.default_rng([seed, index])
    bpm = float(rng.uniform(120, 130))
    beat = 60.0 / bpm
    scale = MINOR if rng.random() < 0.6 else MAJOR
    root = 33 + int(rng.integers(0, 12))  # bass root between A1 and G#2
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    snare_kind = "clap" if rng.random() < 0.5 else "snare"
    top = ["chords", "lead", "both"][int(rng.integers(3))]
    hat_step = 0.5 if rng.random() < 0.5 else 0.25  # offbeat eighths or sixteenths
    n = int(seconds * sr)
    drums, bass, music = np.zeros(n), np.zeros(n), np.zeros(n)
    kick, backbeat = _kick(sr, rng), (_clap if snare_kind == "clap" else _snare)(sr, rng)
    beats = int(seconds / beat) + 1
    bars = beats // 4 + 1
    breakdown = set(range(bars // 2, bars // 2 + max(1, bars // 6)))  # drums drop out here

    def degree_note(degree: int, octave: int = 0) -> int:
        return root + scale[degree % 7] + 12 * (degree // 7 + octave)

    for b in range(beats):
        t = int(b * beat * sr)
        bar, in_bar = divmod(b, 4)
        chord = progression[bar % len(progression)]
        if bar not in breakdown:
            _add_beat(drums, t, in_bar, kick, backbeat, hat_step, beat, sr, rng)
        _add_bass(bass, t, degree_note(chord) + (12 if in_bar == 3 else 0), beat, sr)
        if in_bar == 0 and top in ("chords", "both"):
            _add_chord(music, t, [degree_note(chord + d, octave=2) for d in (0, 2, 4)], beat, sr)
        if top in ("lead", "both"):
            notes = [degree_note(chord + (0, 2, 4, 7)[(2 * in_bar + k) % 4], octave=3) for k in range(2)]
            _add_lead(music, t, notes, beat, sr)
    mix = 0.9 * drums + bass + music
    mix *= float(rng.uniform(0.5, 0.9)) / max(1e-9, np.abs(mix).max())  # varied loudness, no clipping
    info = {
        "bpm": round(bpm, 2),
        "root_midi": root,
        "mode": "minor" if scale is MINOR else "major",
        "backbeat": snare_kind,
        "top": top,
    }
    return mix.astype(np.float32), info


def _add_bass(bass: np.ndarray, t: int, note: int, beat: float, sr: int) -> None:
    """The classic EDM pump: a saw on the offbeat eighth."""
    length = int(0.45 * beat * sr)
    tone = _saw(_midi_hz(note), length, sr, harmonics=10) * _decay(length, 0.25, sr)
    _add(bass, 0.35 * tone, t + int(0.5 * beat * sr))


def _add_chord(music: np.ndarray, t: int, notes: list[int], beat: float, sr: int) -> None:
    """A bar-long pad of detuned saws."""
    length = int(4 * beat * sr)
    env = np.minimum(1.0, np.arange(length) / (0.05 * sr)) * _decay(length, 2.5, sr)
    for note in notes:
        pad = _saw(_midi_hz(note) * 1.003, length, sr, 6) + _saw(_midi_hz(note) * 0.997, length, sr, 6)
        _add(music, 0.05 * pad * env, t)


def _add_lead(music: np.ndarray, t: int, notes: list[int], beat: float, sr: int) -> None:
    """Two square-wave eighths from beat time `t`."""
    length = int(0.45 * beat * sr)
    for note, step in zip(notes, (0.0, 0.5)):
        tone = _square(_midi_hz(note), length, sr, 5) * _decay(length, 0.15, sr)
        _add(music, 0.06 * tone, t + int(step * beat * sr))


# The demo only ever replaces a folder that carries this mark: a user's folder that happens to hold
# a manifest.json (or anything else) is never taken for one.
MARK = ".aerecon-demo"
MARK_TEXT = "Rendered by aerecon's demo generator; aerecon may replace this whole folder.\n"


def owned_by_demo(root: Path) -> bool:
    """Whether `root` is a folder the demo generator made (and so may re-render)."""
    mark = Path(root) / MARK
    try:
        return mark.is_file() and not mark.is_symlink() and mark.read_text() == MARK_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _refuse_foreign(root: Path) -> None:
    # Re-rendering replaces the folder: never do that to anything the demo did not make.
    if root.is_symlink() or root.exists() and (not root.is_dir() or any(root.iterdir()) and not owned_by_demo(root)):
        raise DataError(
            f"data.root={root} holds files but is not a demo dataset aerecon rendered (no {MARK} mark), "
            f"so the demo will not replace them. For your own audio use data=folder data.root={root}; "
            f"a demo folder from an older aerecon can be deleted, and it is rendered again"
        )


def _render_into(staging: Path, spec: dict, desc: str) -> None:
    """The demo tracks `spec` describes, their manifest and the demo's mark, written into a new `staging` folder."""
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    tracks = {}
    for i in tqdm(range(spec["num_songs"]), desc=desc, unit="track"):
        audio, info = render_track(i, spec["seed"], spec["seconds"], spec["sample_rate"])
        name = f"track_{i:03d}.flac"
        sf.write(staging / name, audio, spec["sample_rate"], subtype="PCM_16")
        tracks[name] = info
    (staging / "manifest.json").write_text(json.dumps({"spec": spec, "tracks": tracks}, indent=1))
    (staging / MARK).write_text(MARK_TEXT)


def ensure_demo_dataset(root: Path, num_songs: int, seconds: float, sample_rate: int, seed: int) -> Path:
    """Render the demo tracks into `root` as FLAC files, once; later calls return at once.

    The files appear atomically (rendered into a temporary folder, then renamed), under a
    lock, so an interrupted or concurrent first use never leaves a partial dataset.
    """
    root = Path(root)
    spec = {
        "version": GENERATOR_VERSION,
        "num_songs": num_songs,
        "seconds": seconds,
        "sample_rate": sample_rate,
        "seed": seed,
    }
    manifest = root / "manifest.json"

    def ready() -> bool:
        return owned_by_demo(root) and manifest.exists() and json.loads(manifest.read_text()).get("spec") == spec

    if ready():
        return root
    _refuse_foreign(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if ready():
            return root
        _refuse_foreign(root)
        staging = root.with_name(root.name + f".tmp{os.getpid()}")
        _render_into(staging, spec, desc=f"Rendering demo tracks into {root}")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(staging, root)
    return root
