"""Does the RL path learn? The GRPO loop on CPU, end to end, with simulated annotators.

    .venv/bin/python benchmarks/bench_grpo_loop.py [--work DIR] [--seed 0] [--grpo-steps 20] [--resume]
        [--vllm-url http://127.0.0.1:8100/v1] [--plot docs/grpo_loop.png] [--out results.json]

1. A pool of parent texts (the bundled SmolLM2-135M, through the vLLM server when it answers, else
   the local backend) for short writing requests; battles between two texts of the same request.
2. Three simulated annotators with a hidden preference vote on every battle (10% random votes).
3. ``lwz export preferences --format reward`` and ``lwz train reward``: a reward model from the votes.
4. ``lwz export prompts`` and ``lwz train grpo --rewards length,format,quality --combine paper``
   (TRL's ``normalize_then_sum``) for a bounded number of steps, registered as the child (the
   reward-hacking gate runs on requests of the same kind).
5. Held-out requests: parent and child each write ``--samples`` texts per request (the same seeds,
   both on the local backend); each text gets the three rewards and the hidden cost.
6. Arena battles child vs parent on those texts, voted by the same simulated annotators.

The hidden preference: a text nearer the requested word count (``TARGET`` words), with fewer
repeated 3-grams, wins (the cost in :func:`hidden_cost`, lower is better). It was chosen because a
135M reward model can learn it from a few hundred votes (it is visible in every text, and the
length cue is strong) and GRPO can move it in tens of steps (where to stop writing is one decision,
the end-of-text token). It overlaps the length reward on purpose, as the paper's quality reward
correlates with length; the repetition part is what only the annotators and the format reward see.

The held-out combined reward is each reward standardised by the parent's held-out mean and standard
deviation, then summed (the paper's normalise-then-combine, with the parent's texts as the group).
The test that the child's rises beyond noise: a two-sided sign test over the (request, seed) pairs
and a 95% bootstrap interval of the mean paired difference that resamples whole requests.
Every ``lwz`` step runs as a subprocess, as a user runs it; the figures are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LWZ = REPO / ".venv" / "bin" / "lwz"

TARGET = 15
MAX_TOKENS = 64
PARENT, CHILD, POOL = "smollm2-135m", "smollm2-grpo", "parent-pool"
HELD_PARENT = "parent-plain"
"""The parent on the local backend with the child's sampling: ``lwz models prepare`` registers the bundled
model with repetition penalty 1.1, which ``--register`` does not pass on to the child (and GRPO samples
without it), so the held-out comparison uses an entry of the same weights without it."""
TOPICS_TRAIN = ["the sea", "a red bicycle", "winter mornings", "a busy market", "an old library", "rain on a roof",
                "a mountain trail", "a cup of tea", "city lights", "a lost key", "the first snow", "a quiet garden",
                "a forest path", "a harbour at dawn", "a school bus", "an empty stadium", "a thunderstorm",
                "a village fair", "a river bend", "an autumn leaf", "a kitchen at noon", "a train station",
                "a wooden bridge", "a summer night", "a fishing boat", "a crowded beach", "a candle flame",
                "a letter from home", "a snowy owl", "a bakery at dawn", "an abandoned house", "a hot desert"]
TOPICS_HELD_OUT = ["a paper boat", "a desert road", "a night train", "a small bakery", "a windmill", "a lighthouse",
                   "a frozen lake", "a flower shop"]
REWARDS = ("length", "format", "quality")
ANNOTATORS = 3
NOISE = 0.1


def prompt_for(topic: str) -> str:
    return f"In about {TARGET} words, describe {topic}."


def hidden_cost(answer: str) -> float:
    """Lower is better: relative distance to the target length plus the share of repeated 3-grams."""
    from evaluation.metrics import distinct_n
    from generation.counting import count_words

    words = count_words(answer)
    repeated = 1.0 - distinct_n(answer, 3) if words >= 4 else 0.0
    return abs(words - TARGET) / TARGET + repeated


def simulated_vote(left: str, right: str, rng: random.Random, *, noise: float = NOISE) -> str:
    """An annotator who prefers the lower hidden cost, and votes at random ``noise`` of the time."""
    if rng.random() < noise:
        return rng.choice(["left", "right"])
    a, b = hidden_cost(left), hidden_cost(right)
    return "tie" if abs(a - b) < 1e-9 else ("left" if a < b else "right")


def plurality(votes: list[str]) -> str:
    """left, right or tie: the side with more votes."""
    left, right = votes.count("left"), votes.count("right")
    return "left" if left > right else "right" if right > left else "tie"


# ---- statistics (pure) -------------------------------------------------------------------------

def sign_test(diffs: list[float]) -> dict[str, Any]:
    """Two-sided exact sign test of "the median paired difference is 0" (zero differences dropped)."""
    from scipy.stats import binomtest

    up, down = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    p = binomtest(up, up + down, 0.5).pvalue if up + down else 1.0
    return {"up": up, "down": down, "zero": len(diffs) - up - down, "p": float(p)}


def cluster_bootstrap(groups: list[list[float]], *, rng, samples: int = 10_000) -> tuple[float, float]:
    """95% interval of the mean paired difference, resampling whole groups (requests) with replacement."""
    import numpy as np

    sums = np.array([sum(g) for g in groups])
    counts = np.array([len(g) for g in groups])
    picks = rng.integers(0, len(groups), size=(samples, len(groups)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_report(child: list[float], parent: list[float], prompts: list[int], *, rng) -> dict[str, Any]:
    """Means, mean difference (child - parent), sign test and request-bootstrap interval."""
    diffs = [c - p for c, p in zip(child, parent)]
    groups: dict[int, list[float]] = {}
    for prompt, diff in zip(prompts, diffs):
        groups.setdefault(prompt, []).append(diff)
    low, high = cluster_bootstrap(list(groups.values()), rng=rng)
    return {"parent": round(statistics.mean(parent), 4), "child": round(statistics.mean(child), 4),
            "diff": round(statistics.mean(diffs), 4), "ci95": [round(low, 4), round(high, 4)],
            "sign_test": sign_test(diffs), "n": len(diffs)}


# ---- the steps ---------------------------------------------------------------------------------

class Loop:
    """One run of the loop in a work folder: its database, files and timings."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.db = f"sqlite:///{work}/loop.db"
        self.times: dict[str, float] = {}
        self.loads: list[tuple[str, float]] = []

    def mark_load(self, stage: str) -> None:
        self.loads.append((stage, round(os.getloadavg()[0], 2)))

    def lwz(self, *argv: str, ok: tuple[int, ...] = (0,)) -> tuple[int, Any]:
        """Run ``lwz --db DB ARGV --json``; returns the exit code and the parsed JSON (None if none)."""
        command = [str(LWZ), "--db", self.db, *argv, "--json"]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.work)
        (self.work / "lwz.log").open("a").write(f"$ {' '.join(argv)}\n{done.stderr}\n")
        if done.returncode not in ok:
            raise RuntimeError(f"lwz {' '.join(argv[:2])} exited {done.returncode}: {done.stderr.strip()[-800:]}")
        try:
            return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None
        except ValueError:
            return done.returncode, None

    def timed(self, stage: str, func, *a, **kw):
        """Run one stage, or load its result when a rerun on the same --work folder finished it before."""
        done = self.work / f"stage-{stage.replace(' ', '-')}.json"
        if done.is_file():
            saved = json.loads(done.read_text())
            self.times[stage] = saved["seconds"]
            return saved["result"]
        self.mark_load(stage)
        started = time.perf_counter()
        result = func(*a, **kw)
        self.times[stage] = round(time.perf_counter() - started, 1)
        done.write_text(json.dumps({"seconds": self.times[stage], "result": result}))
        print(f"[grpo-loop] {stage}: {self.times[stage]} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        return result

    def engine(self):
        from storage.engine import make_engine

        return make_engine(self.db)

    # 1. models and prompts
    def setup(self) -> str:
        self.lwz("models", "prepare")
        prompts = self.work / "prompts.jsonl"
        with prompts.open("w") as handle:
            for topics, kind in ((TOPICS_TRAIN, "grpo-train"), (TOPICS_HELD_OUT, "grpo-held-out")):
                for topic in topics:
                    handle.write(json.dumps({"prompt": prompt_for(topic), "type": kind, "length": TARGET}) + "\n")
        self.lwz("prompts", "import", str(prompts))
        pool_backend = "local"
        if self.args.vllm_url and _reachable(self.args.vllm_url):
            self.lwz("models", "add", POOL, "--backend", "openai", "--base-url", self.args.vllm_url,
                     "--model-id", self.args.vllm_model, "--template", "direct", "--parent", PARENT)
            pool_backend = "openai"
        else:
            print(f"[grpo-loop] no vLLM server at {self.args.vllm_url}: the pool is written on the local backend "
                  "(slow)", file=sys.stderr)
            self.lwz("models", "add", POOL, "--backend", "local", "--template", "direct", "--parent", PARENT)
        return pool_backend

    def generate(self, engine, model: str, topic: str, seed: int):
        from generation.request import GenerationRequest
        from writing.store import generate_to_row

        request = GenerationRequest(prompt=prompt_for(topic), temperature=1.0, top_p=1.0, seed=seed,
                                    max_tokens=MAX_TOKENS)
        return generate_to_row(engine, model=model, request=request)

    # 2. pool, battles, votes
    def pool_and_votes(self, pool_backend: str) -> dict[str, Any]:
        from storage.engine import session_scope
        from storage.users import add_user
        from storage.votes import add_vote, create_battle

        engine = self.engine()
        k = self.args.pool_samples
        jobs = [(topic, 1000 * (i + 1) + j) for i, topic in enumerate(TOPICS_TRAIN) for j in range(k)]
        with ThreadPoolExecutor(8 if pool_backend == "openai" else 1) as pool:
            gens = list(pool.map(lambda job: self.generate(engine, POOL, *job), jobs))
        votes: list[str] = []
        rng = random.Random(f"{self.args.seed}:pool votes")
        with session_scope(engine) as session:
            annotators = [add_user(session, name=f"sim{i}", role="annotator").id for i in range(ANNOTATORS)]
            for left, right in zip(gens[::2], gens[1::2]):
                battle = create_battle(session, prompt_id=left.prompt_id, left_generation_id=left.id,
                                       right_generation_id=right.id)
                for annotator in annotators:
                    winner = simulated_vote(left.answer, right.answer, rng)
                    add_vote(session, battle_id=battle.id, annotator_id=annotator, winner=winner)
                    votes.append(winner)
        words = [len(g.answer.split()) for g in gens]
        engine.dispose()
        return {"annotators": annotators, "generations": len(gens), "battles": len(gens) // 2, "votes": len(votes),
                "votes_by_side": {w: votes.count(w) for w in ("left", "right", "tie")},
                "pool_words_median": statistics.median(words), "pool_status": _counts(g.status for g in gens),
                "pool_backend": pool_backend}

    # 3. reward model
    def reward_model(self) -> dict[str, Any]:
        data = self.work / "rm.parquet"
        _, exported = self.lwz("export", "preferences", "--format", "reward", "--text", "answer", "--out", str(data))
        _, summary = self.lwz("train", "reward", "--base", PARENT, "--data", str(data), "--out", str(self.work / "rm"),
                              "--max-steps", str(self.args.rm_steps), "--batch-size", str(self.args.rm_batch),
                              "--learning-rate", str(self.args.rm_lr), "--seed", str(self.args.seed))
        final = summary["metrics"]["final"]
        return {"pairs": exported["rows"], "steps": summary["metrics"]["steps"],
                "train_accuracy_last": final.get("accuracy"), "train_loss": final.get("train_loss"),
                "s_per_step": summary["metrics"]["seconds_per_step"]}

    # 4. the format probe: does the parent ever write the think/answer format when asked to?
    def format_probe(self) -> dict[str, Any] | None:
        if not (self.args.vllm_url and _reachable(self.args.vllm_url)):
            return None
        import httpx

        from evaluation.metrics import format_valid
        from training.prompts import messages_for

        valid = total = 0
        for i, topic in enumerate(TOPICS_TRAIN[: self.args.probe_prompts]):
            body = {"model": self.args.vllm_model, "messages": messages_for(prompt_for(topic), template="think"),
                    "max_tokens": 256, "temperature": 1.0, "n": 8, "seed": self.args.seed + i}
            reply = httpx.post(f"{self.args.vllm_url}/chat/completions", json=body, timeout=120).json()
            for choice in reply["choices"]:
                total += 1
                valid += format_valid(choice["message"]["content"] or "")
        return {"template": "think", "samples": total, "format_valid": valid, "max_tokens": 256}

    # 5. GRPO
    def grpo(self) -> dict[str, Any]:
        data = self.work / "grpo_prompts.parquet"
        _, exported = self.lwz("export", "prompts", "--category", "grpo-train", "--out", str(data))
        gate = self.work / "gate.jsonl"
        gate.write_text("".join(json.dumps({"prompt": prompt_for(t), "length": TARGET}) + "\n"
                                for t in TOPICS_TRAIN[:3]))
        out = self.work / "grpo"
        code, summary = self.lwz(
            "train", "grpo", "--base", PARENT, "--data", str(data), "--out", str(out), "--template", "direct",
            "--rewards", ",".join(REWARDS), "--reward-model", str(self.work / "rm"), "--combine", "paper",
            "--max-steps", str(self.args.grpo_steps), "--num-generations", str(self.args.num_generations),
            "--batch-size", str(self.args.grpo_batch), "--max-completion-length", str(MAX_TOKENS),
            "--learning-rate", str(self.args.grpo_lr), "--seed", str(self.args.seed),
            "--save-steps", str(10 * self.args.grpo_steps), "--register", CHILD, "--gate-prompts", str(gate),
            "--gate-max-tokens", str(MAX_TOKENS), ok=(0, 2))
        record = json.loads((out / "lwz_run.json").read_text())
        gate_report = record["metrics"].get("gate", {})
        if code == 2:  # the gate refused registration: register anyway so the arena can judge, and say so
            self.lwz("models", "add", CHILD, "--backend", "local", "--path", str(out), "--template", "direct",
                     "--parent", PARENT)
        return {"prompts": exported["rows"], "record": record, "gate_refused": code == 2,
                "gate_regressed": gate_report.get("regressed")}

    # 6. held-out texts, rewards, hidden cost, battles
    def held_out(self, annotators: list[int]) -> dict[str, Any]:
        from storage.engine import session_scope
        from storage.votes import add_vote, create_battle

        engine = self.engine()
        self.lwz("models", "add", HELD_PARENT, "--backend", "local", "--template", "direct", "--parent", PARENT,
                 "--replace")
        topics = TOPICS_HELD_OUT[: self.args.held_out_prompts]
        jobs = [(i, topic, 500 + 10 * i + s) for i, topic in enumerate(topics) for s in range(self.args.samples)]
        pairs = [(model, job) for job in jobs for model in (HELD_PARENT, CHILD)]
        # Two local models loading at once in two threads race inside transformers (an ImportError, or
        # lm_head left untied and random: garbage text), so the first text of each is written alone.
        rows = [self.generate(engine, model, job[1], job[2]) for model, job in pairs[:2]]
        with ThreadPoolExecutor(2) as pool:  # then the two local models write at the same time
            rows += list(pool.map(lambda pair: self.generate(engine, pair[0], pair[1][1], pair[1][2]), pairs[2:]))
        texts = {model: [row for (m, _), row in zip(pairs, rows) if m == model] for model in (HELD_PARENT, CHILD)}
        wins = {"child": 0, "parent": 0, "tie": 0}
        votes = {"child": 0, "parent": 0, "tie": 0}
        rng = random.Random(f"{self.args.seed}:arena")
        with session_scope(engine) as session:
            for new, old in zip(texts[CHILD], texts[HELD_PARENT]):
                child_left = rng.random() < 0.5
                left, right = (new, old) if child_left else (old, new)
                battle = create_battle(session, prompt_id=new.prompt_id, left_generation_id=left.id,
                                       right_generation_id=right.id, mode="loop")
                cast = []
                for annotator in annotators:
                    winner = simulated_vote(left.answer, right.answer, rng)
                    add_vote(session, battle_id=battle.id, annotator_id=annotator, winner=winner)
                    cast.append(winner)
                for verdict, count in ((plurality(cast), None), *((v, 1) for v in cast)):
                    side = "tie" if verdict == "tie" else ("child" if (verdict == "left") == child_left else "parent")
                    (wins if count is None else votes)[side] += 1
        engine.dispose()
        return {"texts": {m: [(g.answer, g.status) for g in gens] for m, gens in texts.items()},
                "prompt_index": [job[0] for job in jobs], "battles": wins, "votes": votes}


def score(texts: list[str], rm: str) -> dict[str, list[float]]:
    """The three GRPO rewards and the hidden cost of each held-out text (all one request each)."""
    from training.rewards import FormatReward, LengthReward, QualityReward

    from evaluation.metrics import format_valid

    prompts = [t[0] for t in texts]
    answers = [t[1] for t in texts]
    kwargs = {"target_words": [TARGET] * len(answers), "prompts": prompts}
    return {"length": LengthReward()(answers, **kwargs), "format": FormatReward()(answers, **kwargs),
            "quality": QualityReward(rm)(answers, **kwargs), "hidden_cost": [hidden_cost(a) for a in answers],
            "format_valid": [float(format_valid(a)) for a in answers],
            "words": [float(len(a.split())) for a in answers]}


def combined(scores: dict[str, list[float]], reference: dict[str, list[float]]) -> list[float]:
    """Each reward standardised by the reference (parent) mean and deviation, then summed."""
    total = [0.0] * len(scores[REWARDS[0]])
    for name in REWARDS:
        mean, spread = statistics.mean(reference[name]), statistics.pstdev(reference[name]) or 1.0
        total = [t + (v - mean) / spread for t, v in zip(total, scores[name])]
    return total


def curves(record: dict[str, Any]) -> dict[str, list]:
    """Per-step series from the run's logged metrics (TRL's rewards/NAME/mean, reward, lengths)."""
    steps = [e for e in record["metrics"]["log"] if "loss" in e and "train_runtime" not in e]
    keys = {f"rewards/{n}/mean": n for n in REWARDS} | {"reward": "combined", "completions/mean_length": "tokens",
                                                          "frac_reward_zero_std": "zero_std"}
    out: dict[str, list] = {"step": [e["step"] for e in steps]}
    for key, name in keys.items():
        out[name] = [e.get(key) for e in steps]
    return out


def plot(series: dict[str, list], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("length", "length reward"), ("format", "format reward (= -repetition)"),
              ("quality", "quality reward (reward model)"), ("tokens", "completion length (tokens)")]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (name, label) in zip(axes, panels):
        values = series[name]
        ax.plot(series["step"], values, color="#999", lw=1, label="per step")
        window = 5
        smooth = [statistics.mean(values[max(0, i - window + 1): i + 1]) for i in range(len(values))]
        ax.plot(series["step"], smooth, color="#c33", lw=2, label=f"mean of last {window}")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _reachable(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/models", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[str(value)] = out.get(str(value), 0) + 1
    return out


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import numpy as np

    loop = Loop(args, work)
    pool_backend = loop.timed("setup", loop.setup)
    pool = loop.timed("pool and votes", loop.pool_and_votes, pool_backend)
    rm = loop.timed("reward model", loop.reward_model)
    probe = loop.timed("format probe", loop.format_probe)
    grpo = loop.timed("grpo", loop.grpo)
    held = loop.timed("held-out texts and battles", loop.held_out, pool["annotators"])
    scored = {}
    for model in (HELD_PARENT, CHILD):
        requests = [prompt_for(TOPICS_HELD_OUT[i]) for i in held["prompt_index"]]
        scored[model] = loop.timed(f"score {model}", score, [(r, a) for r, (a, _) in zip(requests, held["texts"][model])],
                                   str(work / "rm"))
    loop.mark_load("end")
    total = round(sum(loop.times.values()), 1)  # stages loaded by --resume count with their first run's time
    import resource

    cpu = sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for field in ("ru_utime", "ru_stime"))
    rng = np.random.default_rng(args.seed)
    index = held["prompt_index"]
    report: dict[str, Any] = {}
    for name in (*REWARDS, "hidden_cost", "words", "format_valid"):
        report[name] = paired_report(scored[CHILD][name], scored[HELD_PARENT][name], index, rng=rng)
    report["combined"] = paired_report(combined(scored[CHILD], scored[HELD_PARENT]),
                                       combined(scored[HELD_PARENT], scored[HELD_PARENT]), index, rng=rng)
    from scipy.stats import spearmanr

    parent_scores = scored[HELD_PARENT]
    rho = spearmanr(parent_scores["quality"], [-c for c in parent_scores["hidden_cost"]]).statistic
    series = curves(grpo["record"])
    metrics = grpo["record"]["metrics"]
    result = {
        "seed": args.seed, "target_words": TARGET, "max_tokens": MAX_TOKENS, "total_s": total, "cpu_s_this_invocation": round(cpu, 1),
        "torch_threads": os.environ.get("OMP_NUM_THREADS"), "stage_s": loop.times,
        "load_1min": loop.loads, "pool": pool, "reward_model": {**rm, "held_out_spearman_vs_hidden": round(float(rho), 3)},
        "format_probe": probe,
        "grpo": {"steps": metrics["steps"], "s_per_step": metrics["seconds_per_step"], "prompts": grpo["prompts"],
                 "zero_advantage_steps": metrics.get("zero_advantage_steps"), "rewards": metrics.get("rewards"),
                 "gate_refused": grpo["gate_refused"], "gate_regressed": grpo["gate_regressed"],
                 "first5": {k: _mean5(v[:5]) for k, v in series.items() if k != "step"},
                 "last5": {k: _mean5(v[-5:]) for k, v in series.items() if k != "step"},
                 "options": {"lr": args.grpo_lr, "batch": args.grpo_batch, "num_generations": args.num_generations}},
        "held_out": report, "held_out_samples": len(index), "arena": {"battles": held["battles"], "votes": held["votes"]},
        "examples": {m: [a for a, _ in held["texts"][m][:3]] for m in (HELD_PARENT, CHILD)},
        "held_out_status": {m: _counts(s for _, s in held["texts"][m]) for m in (HELD_PARENT, CHILD)},
    }
    if args.plot:
        plot(series, Path(args.plot), title=f"lwz train grpo, {metrics['steps']} steps, seed {args.seed}: "
                                              f"rewards logged by TRL per step (batch {args.grpo_batch}, "
                                              f"{args.num_generations} generations per request)")
    (work / "series.json").write_text(json.dumps(series))
    return result


def _mean5(values: list) -> float | None:
    present = [v for v in values if isinstance(v, (int, float))]
    return round(statistics.mean(present), 4) if present else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", help="work folder (default: a new temporary folder, removed at the end)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vllm-url", default="http://127.0.0.1:8100/v1", help="server for the parent's pool texts")
    parser.add_argument("--vllm-model", default="smollm2-135m")
    parser.add_argument("--pool-samples", type=int, default=4, help="parent texts per training request (even)")
    parser.add_argument("--rm-steps", type=int, default=16)
    parser.add_argument("--rm-batch", type=int, default=4)
    parser.add_argument("--rm-lr", type=float, default=5e-5)
    parser.add_argument("--probe-prompts", type=int, default=4)
    parser.add_argument("--grpo-steps", type=int, default=20)
    parser.add_argument("--grpo-batch", type=int, default=4)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--grpo-lr", type=float, default=2e-5)
    parser.add_argument("--held-out-prompts", type=int, default=len(TOPICS_HELD_OUT))
    parser.add_argument("--samples", type=int, default=6, help="held-out texts per request and model")
    parser.add_argument("--plot", help="write the reward curves here (PNG)")
    parser.add_argument("--out", help="also write the result JSON here")
    parser.add_argument("--resume", action="store_true",
                        help="rerun in an existing --work folder: stages that finished there are loaded, not rerun")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (OMP_NUM_THREADS); on a shared, loaded machine two threads "
                             "that wait for each other are many times slower than one")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads here or in any lwz subprocess
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=args.resume)
        result = run(args, work)
    else:
        with tempfile.TemporaryDirectory(prefix="grpo-loop-") as tmp:
            result = run(args, Path(tmp))
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
