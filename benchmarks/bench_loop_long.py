"""The loop at length on this CPU, end to end: long texts -> blind votes -> reward model and DPO ->
held-out battles between the DPO child and its parent. Does a preference about *long* texts survive
the loop, and does the child win beyond noise?

1. Pool: the bundled model on one vLLM server, registered as ``lwz serve`` registers it, as two
   contestants: ``smollm2-default`` (its own defaults: template auto, which plans at this length,
   temperature 0.6, penalty 1.1) and ``smollm2-hot`` (the same entry, sampled at temperature 1.0
   without a penalty, per request), each writing ``pool_seeds`` texts per training prompt (SIZES).
   Complete texts of at least ``min_words`` join the arena pool; ``lwz battles form`` pairs them.
   The parent's held-out texts (the default contestant) are written on the same server.
2. Votes: ``lwz serve --auth`` on the same database; simulated annotators sign in and use the vote
   route (``/api/arena/next``, ``/api/arena/vote``), each waiting the reading time the server requires,
   so no vote is flagged. Hidden preference (:func:`hidden_score`, NOISE of the votes at random):
   distinct-4 of the whole text, +0.3 for a complete last sentence, minus half the relative distance
   to the target.
3. ``lwz export preferences``, ``lwz train reward`` and ``lwz train dpo --register`` (the reward-hacking
   gate runs) at the model's full context, 1 epoch, batch 1; what the trainers drop or truncate is reported.
4. Held out: the child on its own vLLM server writes the held-out prompts with the parent's seeds and
   settings; each (prompt, seed) is a battle, voted the same way. Reported: child wins/losses/ties (each
   battle's plurality) with a 95% Wilson interval and an exact sign test, the reward model's accuracy on
   the held-out texts' hidden order, and S_l and the on-point margin, which the voters did not use.

Each stage's wall time and ``uptime`` before and after go to benchmarks/results/loop_long.json
(``--smoke``: a small run that checks the script, loop_long_smoke.json; a failed run writes
``*.partial.json``). Where another vLLM CPU server runs, add ``VLLM_CPU_OMP_THREADS_BIND=nobind``: by
default both pin their worker to core 0, and the second did not start within 7 minutes.

    .venv/bin/python benchmarks/bench_loop_long.py [--work DIR]
    .venv/bin/python benchmarks/bench_loop_long.py --smoke
"""

from __future__ import annotations

import argparse
import atexit
import json
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena.pool import DEFAULT_NAME_WORDS, names_found  # noqa: E402
from arena.rules import ArenaSettings, floor_seconds  # noqa: E402
from benchmarks.bench_long import _measure, _text_figures, _uptime  # noqa: E402
from evaluation.crosscheck import wilson  # noqa: E402
from evaluation.metrics import distinct_n  # noqa: E402
from generation.bundled import ensure_bundled_model  # noqa: E402
from generation.control import last_sentence_end  # noqa: E402
from generation.counting import count_words  # noqa: E402
from generation.request import GenerationRequest  # noqa: E402
from storage.arena import create_battle_with_extra  # noqa: E402
from storage.catalog import get_model, list_models  # noqa: E402
from storage.counted_votes import verdict_of  # noqa: E402
from storage.engine import make_engine, session_scope, upgrade  # noqa: E402
from storage.generations import get_generation, set_in_pool  # noqa: E402
from storage.users import add_user  # noqa: E402
from tests.helpers import lwz as run_lwz  # noqa: E402
from training.checkpoints import model_context  # noqa: E402
from training.preferences import completion_texts  # noqa: E402
from writing.models import register_model  # noqa: E402
from writing.store import generate_to_row  # noqa: E402

TRAIN_PROMPTS = [
    "Write a story of about {words:,} words about a lighthouse keeper who finds an old letter hidden in the wall.",
    "Write an essay of about {words:,} words on why cities should plant more trees.",
    "Write a story of about {words:,} words about two sisters who reopen their grandmother's bakery.",
    "Write an essay of about {words:,} words on what a year without a smartphone teaches a teenager.",
    "Write a story of about {words:,} words about a mountain rescue team caught in a sudden storm.",
    "Write an essay of about {words:,} words on the history and future of public libraries.",
]
HELD_OUT_PROMPTS = [
    "Write a story of about {words:,} words about a night-train conductor who finds a lost child on board.",
    "Write an essay of about {words:,} words on how rivers shaped the growth of great cities.",
    "Write a story of about {words:,} words about a retired astronaut who starts a small vegetable farm.",
]
SIZES = {"train_prompts": len(TRAIN_PROMPTS), "held_out_prompts": len(HELD_OUT_PROMPTS), "target_words": 1800,
         "min_words": 1500,  # shorter texts stay out of the pool
         "pool_seeds": 2,  # texts per contestant and training prompt: up to 4 battles a prompt (every cross pair)
         "held_out_seeds": 2,  # texts per model and held-out prompt: one battle per (prompt, seed)
         "gate_max_tokens": 320}  # the reward-hacking gate's default
SMOKE = {"train_prompts": 2, "held_out_prompts": 1, "target_words": 150, "min_words": 100, "pool_seeds": 1,
         "held_out_seeds": 1, "gate_max_tokens": 64}
CONCURRENCY = 4  # generations at once (the server batches them)
ANNOTATORS, NOISE, SEED = 3, 0.1, 0
READ_MARGIN_S = 1.0  # waited beyond the server's reading time
SERVER_READY_S = 1800  # a vLLM server's start on a loaded 2-core machine
TRAIN_CONFIG = "activation_checkpointing: true\nsave_strategy: 'no'\n"  # memory at length; no mid-run saves

BASE = "smollm2-135m"  # the bundled weights on the local backend: what training starts from
DEFAULT, HOT = "smollm2-default", "smollm2-hot"
CHILD, CHILD_SERVED = "smollm2-dpo-long", "smollm2-dpo-long-vllm"
SAMPLING = {DEFAULT: {}, HOT: {"temperature": 1.0, "repetition_penalty": 1.0}}

STOP = threading.Event()  # set on SIGTERM: annotators stop waiting
_CLEANUPS: list = []  # servers to stop on exit, SIGTERM included


def log(line: str) -> None:
    print(f"[loop-long {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


STAGES_S: dict[str, float] = {}


@contextmanager
def stage(name: str):
    """Times a stage into STAGES_S, announced on stderr."""
    log(f"{name} ...")
    started = time.monotonic()
    yield
    STAGES_S[name] = round(time.monotonic() - started, 1)
    log(f"{name}: {STAGES_S[name]:.0f} s")


def start_server(**kwargs):
    """A vLLM CPU server (``tests.vllm_server``), stopped at exit or on SIGTERM if still running."""
    from tests.vllm_server import start_vllm_server

    server = start_vllm_server(timeout_s=SERVER_READY_S, **kwargs)
    atexit.register(server.stop)
    _CLEANUPS.append(server.stop)
    return server


def on_sigterm(*_) -> None:
    STOP.set()
    for stop in reversed(_CLEANUPS):  # the servers go first, so streams waiting on them end
        stop()
    sys.exit(143)


def hidden_score(answer: str, target: int) -> float:
    """The voters' hidden preference (higher is better): repetition across the whole text, a complete ending, length."""
    end = answer.rstrip()
    complete = bool(end) and last_sentence_end(end) == len(end)
    return distinct_n(answer, 4) + 0.3 * complete - 0.5 * abs(count_words(answer) - target) / target


def hidden_vote(left: str, right: str, target: int, rng: random.Random) -> str:
    if rng.random() < NOISE:
        return rng.choice(("left", "right"))
    a, b = hidden_score(left, target), hidden_score(right, target)
    return "tie" if a == b else "left" if a > b else "right"


def lwz(db: str, *argv: str, ok: tuple[int, ...] = (0,)) -> tuple[int, dict | None]:
    """``lwz --db DB ARGV --json`` as a user runs it; its progress (stderr) shows here."""
    done = run_lwz(*argv, "--json", db=db, timeout=None, show_progress=True)
    if done.returncode not in ok:
        raise RuntimeError(f"lwz {' '.join(argv[:2])} exited {done.returncode}")
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None


def generate_all(engine, jobs: list[tuple], target: int) -> list[dict]:
    """Each ``(model, prompt, seed)`` written through the service to its row, CONCURRENCY at once."""
    done = []

    def one(job):
        model, prompt, seed = job
        started = time.monotonic()
        request = GenerationRequest(prompt, target_words=target, seed=seed, **SAMPLING.get(model, {}))
        row = generate_to_row(engine, model=model, request=request)
        run = {**_measure(row, target, time.monotonic() - started), "id": row.id, "model": model, "prompt": prompt,
               "seed": seed, "hidden_score": round(hidden_score(row.answer, target), 4)}
        done.append(run)
        log(f"  [{len(done)}/{len(jobs)}] {model} seed {seed}: {run['words']} words, {run['status']}, "
            f"{run['ending']}, {run['seconds']:.0f} s")
        return run

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(one, jobs))


def annotate(app, name: str, password: str, rng: random.Random, wpm: float) -> list[dict]:
    """One simulated annotator: signs in, takes battles until none is left, and votes on each after the
    reading time the server requires (the floor, and both whole texts at its reading speed)."""
    import httpx

    votes = []
    with httpx.Client(base_url=app.url, headers={"Origin": app.url}, timeout=120) as client:
        client.post("/login", data={"username": name, "password": password}).raise_for_status()
        while not STOP.is_set():
            shown = client.post("/api/arena/next", json={})
            shown.raise_for_status()
            battle = shown.json().get("battle")
            if battle is None:
                return votes
            left, right = battle["left"]["answer"], battle["right"]["answer"]
            words_left, words_right = count_words(left), count_words(right)
            wait = READ_MARGIN_S + max(floor_seconds(words_left=words_left, words_right=words_right, words_per_minute=wpm),
                                       (words_left + words_right) / wpm * 60)
            winner = hidden_vote(left, right, battle["target_words"], rng)
            if STOP.wait(wait):
                break
            answer = client.post("/api/arena/vote", json={"battle_id": battle["battle_id"], "winner": winner})
            answer.raise_for_status()
            body = answer.json()
            votes.append({"annotator": name, "battle_id": battle["battle_id"], "winner": body["winner"],
                          "flagged": body["flagged"], "created": body["created"], "waited_s": round(wait, 1)})
            log(f"  {name} voted {winner} on battle {battle['battle_id']} after {wait:.0f} s"
                + (" (FLAGGED)" if body["flagged"] else ""))
    return votes


def vote_round(work: Path, db_url: str, annotators: dict[str, random.Random]) -> list[dict]:
    """``lwz serve --auth`` on the database, every annotator voting until nothing is left, then stopped."""
    from tests.live_app import start_live_app

    wpm = ArenaSettings.from_env().words_per_minute  # the server reads the same environment
    with start_live_app(work / "app", auth=True, db_url=db_url) as app, ThreadPoolExecutor(len(annotators)) as pool:
        rounds = pool.map(lambda name: annotate(app, name, f"{name}-pw", annotators[name], wpm), annotators)
        return [vote for votes in rounds for vote in votes]


def vote_summary(votes: list[dict]) -> dict:
    return {"stored": sum(v["created"] for v in votes), "flagged": sum(v["flagged"] for v in votes),
            "by_winner": {w: sum(v["winner"] == w for v in votes) for w in ("left", "right", "tie", "both_bad")},
            "waited_s_median": statistics.median(v["waited_s"] for v in votes) if votes else None}


def pool_summary(runs: list[dict], min_words: int) -> dict:
    words, complete = [r["words"] for r in runs], [r for r in runs if r["status"] == "complete"]
    return {"written": len(runs), "in_pool": sum(r["words"] >= min_words for r in complete),
            "left_out_short": sum(r["words"] < min_words for r in complete), "left_out_not_complete": len(runs) - len(complete),
            "words": {"mean": round(statistics.mean(words)), "median": statistics.median(words), "min": min(words),
                      "max": max(words)}, "distinct4_median": statistics.median(r["distinct4"] for r in runs),
            "hidden_score_mean": round(statistics.mean(r["hidden_score"] for r in runs), 4),
            "endings": {e: sum(str(r["ending"]) == e for r in runs) for e in sorted({str(r["ending"]) for r in runs})}}


def pair_tokens(path: Path, context: int) -> dict:
    """Token counts of the exported pairs with the bundled tokenizer (request + the longer text; no template)."""
    import pandas as pd
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ensure_bundled_model())
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    rows = pd.read_parquet(path).to_dict("records")
    sizes = [count(r["prompt"]) + max(count(r["chosen"]), count(r["rejected"])) for r in rows]
    return {"pairs": len(rows), "longest_tokens": max(sizes, default=0), "median_tokens": statistics.median(sizes) if sizes else 0,
            "over_context": sum(s > context for s in sizes)}


def train(db: str, kind: str, data: Path, out: Path, config: Path, context: int, extra: tuple = ()) -> dict:
    """``lwz train KIND`` at the model's full context; the run's record (``OUT/lwz_run.json``)."""
    code, _ = lwz(db, "train", kind, "--base", BASE, "--data", str(data), "--out", str(out), "--batch-size", "1",
                  "--max-length", str(context), "--config", str(config), *extra, ok=(0, 2))
    record = json.loads((out / "lwz_run.json").read_text())
    metrics = record["metrics"]
    return {"exit": code, "steps": metrics["steps"], "seconds_per_step": metrics["seconds_per_step"],
            "peak_rss_mb": metrics["peak_rss_mb"], "lengths": metrics["lengths"], "data": metrics["data"],
            "final": {k: v for k, v in metrics["final"].items() if not isinstance(v, (list, dict))},
            "gate": metrics.get("gate"), "registered": record.get("registered"), "template": record.get("template")}


def held_out_battles(engine, parent_runs: list[dict], child_runs: list[dict]) -> dict[int, dict]:
    """One battle per (prompt, seed) with both texts complete, sides drawn with a seeded rng; the
    texts stay out of the pool, so the server forms nothing else from them."""
    rng, battles = random.Random(SEED), {}
    with session_scope(engine) as session:
        words = list(DEFAULT_NAME_WORDS) + [m.name for m in list_models(session)]
        for parent, child in zip(parent_runs, child_runs):
            if parent["status"] != "complete" or child["status"] != "complete":
                continue
            gens = [get_generation(session, generation_id=r["id"]) for r in (child, parent)]
            if rng.random() < 0.5:
                gens.reverse()
            found = names_found([g.think for g in gens] + [g.answer for g in gens], words=words)
            battle = create_battle_with_extra(session, prompt_id=gens[0].prompt_id, left_generation_id=gens[0].id,
                                              right_generation_id=gens[1].id, mode="loop",
                                              extra={"seed": SEED, "names_model": bool(found), "held_out": True})
            battles[battle.id] = {"child_side": "left" if gens[0].id == child["id"] else "right",
                                  "child": child, "parent": parent, "names_model": bool(found)}
    return battles


def held_out_verdict(battles: dict[int, dict], votes: list[dict]) -> dict:
    """Child wins/losses/ties over battles (each battle's plurality of votes, the export's rule), a
    95% Wilson interval of the child's share of decisive battles, and an exact two-sided sign test."""
    from scipy.stats import binomtest

    outcome = {"win": 0, "loss": 0, "tie": 0}
    for battle_id, battle in battles.items():
        mine = [v["winner"] for v in votes if v["battle_id"] == battle_id and not v["flagged"]]
        verdict = str(verdict_of(*(mine.count(w) for w in ("left", "right", "tie", "both_bad"))))
        outcome["tie" if verdict not in ("left", "right") else "win" if verdict == battle["child_side"] else "loss"] += 1
    decisive = outcome["win"] + outcome["loss"]
    low, high = wilson(outcome["win"], decisive)
    p = float(binomtest(outcome["win"], decisive, 0.5).pvalue) if decisive else 1.0
    interval = None if low is None else [round(low, 3), round(high, 3)]
    said = (f"the child won {outcome['win']} of {decisive} decisive battles ({outcome['tie']} ties); 95% Wilson "
            f"interval of its share {interval}, sign test p={p:.3g}")
    verdict = ("win beyond noise: " if low is not None and low > 0.5 else
               "loss beyond noise: " if high is not None and high < 0.5 else "null (the interval includes 0.5): ") + said
    child_votes = sum(v["winner"] == battles[v["battle_id"]]["child_side"] for v in votes)
    parent_votes = sum(v["winner"] in ("left", "right") for v in votes) - child_votes
    return {"battles": len(battles), **outcome, "child_share_of_decisive": round(outcome["win"] / decisive, 3) if decisive else None,
            "wilson95": interval, "sign_test_p": round(p, 4), "verdict": verdict,
            "votes": {"child": child_votes, "parent": parent_votes, "tie": sum(v["winner"] == "tie" for v in votes)},
            "names_model_battles": sum(b["names_model"] for b in battles.values())}


def unused_measures(parent_runs: list[dict], child_runs: list[dict]) -> dict:
    """S_l and the on-point margin of planned sections (the voters used neither), child against parent."""
    def side(runs):
        margins = [r["on_point"]["margin"] for r in runs if r.get("on_point") and r["on_point"].get("margin") is not None]
        return {"S_l": round(statistics.mean(r["s_l"] for r in runs), 1) if runs else None,
                "on_point_margin_mean": round(statistics.mean(margins), 3) if margins else None,
                "planned_texts": sum(bool(r.get("on_point")) for r in runs),
                "hidden_score_mean": round(statistics.mean(r["hidden_score"] for r in runs), 4) if runs else None}

    diffs = [c["s_l"] - p["s_l"] for c, p in zip(child_runs, parent_runs)]
    return {"child": side(child_runs), "parent": side(parent_runs),
            "S_l_child_minus_parent": {"mean": round(statistics.mean(diffs), 1) if diffs else None,
                                       "up": sum(d > 0 for d in diffs), "down": sum(d < 0 for d in diffs)}}


def reward_accuracy(rm_dir: Path, engine, runs: list[dict], pairs: list[tuple[int, int]]) -> dict:
    """How often the reward model orders two held-out texts of one request as the hidden preference
    does, over the held-out battles and over every two held-out texts of a request (hidden ties left out)."""
    import pandas as pd

    from training.rewards import QualityReward

    with session_scope(engine) as session:
        rows = [get_generation(session, generation_id=r["id"]) for r in runs]
        texts = completion_texts(pd.Series([g.think for g in rows]), pd.Series([g.answer for g in rows]), mode="full")
    model = QualityReward(str(rm_dir), device="cpu")
    scores = dict(zip((r["id"] for r in runs), model(list(texts), request=[r["prompt"] for r in runs])))
    hidden = {r["id"]: r["hidden_score"] for r in runs}
    every = [pair for prompt in {r["prompt"] for r in runs}
             for pair in combinations([r["id"] for r in runs if r["prompt"] == prompt], 2)]

    def accuracy(which):
        judged = [(a, b) for a, b in which if hidden[a] != hidden[b]]
        right = sum((scores[a] - scores[b]) * (hidden[a] - hidden[b]) > 0 for a, b in judged)
        return {"pairs": len(judged), "correct": right, "accuracy": round(right / len(judged), 3) if judged else None}

    return {"battle_pairs": accuracy(pairs), "all_pairs_per_request": accuracy(every),
            "truncated_inputs": model.stats["truncated"]}


def run(args, result: dict) -> None:
    """The loop, filling ``result`` as it goes (what a failed run reached is written too)."""
    sizes = {**SIZES, **(SMOKE if args.smoke else {})}
    target, min_words, context = sizes["target_words"], sizes["min_words"], model_context(ensure_bundled_model())
    train_prompts = [p.format(words=target) for p in TRAIN_PROMPTS[: sizes["train_prompts"]]]
    held_prompts = [p.format(words=target) for p in HELD_OUT_PROMPTS[: sizes["held_out_prompts"]]]
    work = Path(args.work or tempfile.mkdtemp(prefix="lwz-loop-long-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{work / 'loop.db'}"
    log(f"work folder {work}")
    result.update({"sizes": {**sizes, "concurrency": CONCURRENCY, "annotators": ANNOTATORS, "noise": NOISE, "seed": SEED,
                             "epochs": 1, "batch_size": 1, "max_length": context, "train_config": TRAIN_CONFIG,
                             "contestant_sampling": SAMPLING},
                   "smoke": args.smoke, "work": str(work), "load_before": _uptime(), "stages_s": STAGES_S,
                   "prompts": {"train": train_prompts, "held_out": held_prompts}, "runs": {}})
    engine = make_engine(db)
    upgrade(engine)
    prompts_file = work / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps({"prompt": p, "type": kind, "length": target}) + "\n" for kind, ps in
                                    (("loop-train", train_prompts), ("loop-held-out", held_prompts)) for p in ps))
    lwz(db, "prompts", "import", str(prompts_file))
    annotators = {f"sim{i}": random.Random(f"{SEED}:sim{i}") for i in range(ANNOTATORS)}
    with session_scope(engine) as session:
        for name in annotators:
            add_user(session, name=name, role="annotator", password=f"{name}-pw")

    with stage("server_start"):
        server = start_server()
    with session_scope(engine) as session:
        register_model(session, name=BASE, backend="local")
        for name in (DEFAULT, HOT):
            register_model(session, name=name, backend="openai", base_url=server.base_url, model_id=server.model)
        entries = {n: get_model(session, name=n) for n in (DEFAULT, HOT)}
        result["registered"] = {n: {"template": e.template, "settings": dict(e.sampling or {})} for n, e in entries.items()}
    runs = result["runs"]
    pool_jobs = [(m, p, SEED + 100 * i + k) for i, p in enumerate(train_prompts) for k in range(sizes["pool_seeds"])
                 for m in (DEFAULT, HOT)]
    with stage("pool"):
        runs["pool"] = pool_runs = generate_all(engine, pool_jobs, target)
    held_jobs = [(p, SEED + 1000 + 100 * i + k) for i, p in enumerate(held_prompts)
                 for k in range(sizes["held_out_seeds"])]
    with stage("held_out_generation_parent"):
        runs["held_out_parent"] = parent_runs = generate_all(engine, [(DEFAULT, p, s) for p, s in held_jobs], target)
    server.stop()
    with session_scope(engine) as session:
        for r in pool_runs:
            if r["status"] == "complete" and r["words"] >= min_words:
                set_in_pool(session, generation_id=r["id"])
    _, formed = lwz(db, "battles", "form", "--seed", str(SEED))
    result["pool"] = {m: pool_summary([r for r in pool_runs if r["model"] == m], min_words) for m in (DEFAULT, HOT)}
    result["pool"]["battles_formed"] = formed["battles_formed"]

    with stage("votes"):
        votes = vote_round(work, db, annotators)
    result["votes"] = vote_summary(votes)
    with stage("export"):
        _, dpo_export = lwz(db, "export", "preferences", "--format", "dpo", "--out", str(work / "prefs.parquet"))
        _, rm_export = lwz(db, "export", "preferences", "--format", "reward", "--out", str(work / "rm.parquet"))
    result["export"] = {"dpo": dpo_export, "reward": rm_export, "tokens": pair_tokens(work / "prefs.parquet", context)}
    config = work / "train.yaml"
    config.write_text(TRAIN_CONFIG)
    with stage("reward"):
        result["reward"] = train(db, "reward", work / "rm.parquet", work / "rm", config, context)
    with stage("dpo"):
        result["dpo"] = train(db, "dpo", work / "prefs.parquet", work / "dpo", config, context,
                              ("--register", CHILD, "--gate-max-tokens", str(sizes["gate_max_tokens"])))

    with stage("server_start_child"):
        child_server = start_server(model_dir=work / "dpo", served_name=CHILD)
    with session_scope(engine) as session:
        parent = get_model(session, name=DEFAULT)
        settings = {k: v for k, v in (parent.sampling or {}).items() if k != "api"}
        registered = get_model(session, name=CHILD) is not None  # None: the gate refused it
        register_model(session, name=CHILD_SERVED, backend="openai", base_url=child_server.base_url,
                       model_id=child_server.model, template=parent.template, settings=settings,
                       parent=CHILD if registered else BASE)
    with stage("held_out_generation_child"):
        runs["held_out_child"] = child_runs = generate_all(engine, [(CHILD_SERVED, p, s) for p, s in held_jobs], target)
    child_server.stop()
    with stage("held_out_text_figures"):
        with session_scope(engine) as session:
            texts = [(g.answer, dict(g.params or {})) for g in
                     (get_generation(session, generation_id=r["id"]) for r in parent_runs + child_runs)]
        for r, (answer, params) in zip(parent_runs + child_runs, texts):
            figures = _text_figures(answer, params)
            r.update(ends_on_complete_sentence=figures["ends_on_complete_sentence"], on_point=figures["on_point"])
    battles = held_out_battles(engine, parent_runs, child_runs)
    with stage("held_out_votes"):
        held_votes = vote_round(work, db, annotators)
    result["held_out"] = {**held_out_verdict(battles, held_votes), "vote_route": vote_summary(held_votes),
                          "measures_voters_did_not_use": unused_measures(parent_runs, child_runs)}
    with stage("reward_model_on_held_out"):
        result["reward_model_held_out"] = reward_accuracy(
            work / "rm", engine, parent_runs + child_runs, [(b["child"]["id"], b["parent"]["id"]) for b in battles.values()])
    result["verdict"] = result["held_out"]["verdict"]
    result["load_after"] = _uptime()
    result["runs"] = result.pop("runs")  # the texts' figures last in the file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a small run that checks the script (loop_long_smoke.json)")
    parser.add_argument("--work", help="folder for the database, exports and checkpoints (default: a new temporary one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    started, result = time.monotonic(), {}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("loop_long_smoke.json" if args.smoke else "loop_long.json")
    try:
        run(args, result)
    except BaseException:
        result.update(wall_s=round(time.monotonic() - started, 1), load_after=_uptime())
        path.with_suffix(".partial.json").write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        log(f"failed; what it reached is in {path.with_suffix('.partial.json')}")
        raise
    result["wall_s"] = round(time.monotonic() - started, 1)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2, ensure_ascii=False))
    log(f"written to {path}")


if __name__ == "__main__":
    main()
