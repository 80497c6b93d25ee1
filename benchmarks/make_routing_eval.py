"""Build the routing evaluation sets (test and dev) for the Lepton Assistant router.

The router sends each chat message to one of four skills (customer_service,
medical_triage, credit_scoring, recommendation) or to out_of_scope. This script
writes a JSONL file with one object per line: {"text", "skill", "source"}.

There are two splits, chosen with ``--split``:

* ``test`` (the default) -- the held-out evaluation set, built only from
  held-out splits of the public data sets. Never tune the router on it.
* ``dev`` -- a development set for tuning the router, built only from train
  and validation splits and a separate hand-written file. It never reads
  Banking77 test.csv or CLINC150 ``test`` / ``oos_test``.

Composition of the test split (with the default arguments):

* customer_service -- 100 texts sampled from the Banking77 *test* split
  (test.csv, columns text,category), source "banking77".
* out_of_scope -- 100 texts sampled from CLINC150 ``oos_test``
  (source "clinc150_oos") plus 60 texts sampled from the CLINC150 in-scope
  ``test`` split (source "clinc150_test"), restricted to intents of domains
  that have no counterpart among the skills: travel, utility,
  auto_and_commute, work, small_talk, meta and home (see ``CLINC_OOS_DOMAINS``).
  The domains banking and credit_cards are excluded (they overlap
  customer_service / credit_scoring), as is kitchen_and_dining (restaurant and
  meal suggestions overlap recommendation). A few intents of the kept domains
  are also excluded because they overlap a skill (``CLINC_EXCLUDED_INTENTS``):
  order and order_status (home: ordering / tracking a purchase),
  exchange_rate (travel: Banking77 has an exchange_rate intent),
  travel_notification (travel: "let my bank know I'm travelling", a card /
  bank-account request) and direct_deposit (work: a bank-account operation).
  CLINC's ``oos_test`` is "out of scope" for CLINC's 150 intents, not for this
  assistant: some of its queries are plainly symptom questions, shopping
  requests, refunds or loan questions. Those are listed in
  ``OOS_TEST_OVERLAPS`` and removed before sampling, so that the
  out_of_scope label stays correct.
* every line of the hand-written file (source "handwritten"): messages written
  for this project for medical_triage, credit_scoring, recommendation and
  shop-style customer_service (benchmarks/data/routing_handwritten.jsonl).

Only held-out splits are read for the test split (Banking77 test.csv, CLINC150
test and oos_test); train and validation splits are never used there.

Composition of the dev split (``--split dev``):

* customer_service -- 100 texts sampled from the Banking77 *train* split
  (train.csv), source "banking77_train".
* out_of_scope -- 100 CLINC150 out-of-scope queries plus 60 texts sampled
  from the in-scope ``val`` split (source "clinc150_val"), restricted to the
  same intents as the test split (``CLINC_OOS_DOMAINS`` minus
  ``CLINC_EXCLUDED_INTENTS``). CLINC's ``oos_val`` has only 100 queries, and
  those that belong to one of this assistant's skills are removed first
  (``OOS_VAL_OVERLAPS``), so every remaining ``oos_val`` query is used
  (source "clinc150_oos_val") and the shortfall is sampled from
  ``oos_train`` (source "clinc150_oos_train"), after removing its own
  overlaps (``OOS_TRAIN_OVERLAPS``).
* every line of the dev hand-written file (source "handwritten"),
  benchmarks/data/routing_dev_handwritten.jsonl, written separately from the
  test file and from the router's training examples.

In both splits, sampling uses ``random.Random(seed)`` over pools in file
order, with exact duplicates (case-insensitive) removed, so the output is
identical for the same inputs and seed. Duplicate texts across sources are an
error. A per-skill count summary is printed to stderr.

Licences and attribution:

* Banking77 -- CC BY 4.0. Casanueva, Temcinas, Gerz, Henderson, Vulic (2020),
  "Efficient Intent Detection with Dual Sentence Encoders", PolyAI.
  https://github.com/PolyAI-LDN/task-specific-datasets
* CLINC150 -- CC BY 3.0. Larson, Mahendran, Peper, Clarke, Lee, Hill,
  Kummerfeld, Leach, Laurenzano, Tang, Mars (2019), "An Evaluation Dataset for
  Intent Classification and Out-of-Scope Prediction", EMNLP-IJCNLP.
  https://github.com/clinc/oos-eval

Usage:

    python3 benchmarks/make_routing_eval.py \\
        --banking77 /work/shared/data/banking77 \\
        --clinc /work/shared/data/clinc150 \\
        --handwritten benchmarks/data/routing_handwritten.jsonl \\
        --out /tmp/routing_eval.jsonl

    python3 benchmarks/make_routing_eval.py --split dev \\
        --banking77 /work/shared/data/banking77 \\
        --clinc /work/shared/data/clinc150 \\
        --handwritten benchmarks/data/routing_dev_handwritten.jsonl \\
        --out /tmp/routing_dev.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections import Counter
from pathlib import Path

SKILLS = ("customer_service", "medical_triage", "credit_scoring", "recommendation", "out_of_scope")

N_BANKING77 = 100
N_CLINC_OOS = 100
N_CLINC_INSCOPE = 60

# CLINC150 intent -> domain mapping (data/domains.json of clinc/oos-eval; it is
# not part of data_full.json). Only the domains used as out_of_scope are listed.
CLINC_OOS_DOMAINS = {
    "travel": [
        "book_flight", "book_hotel", "car_rental", "carry_on", "exchange_rate",
        "flight_status", "international_visa", "lost_luggage", "plug_type",
        "timezone", "translate", "travel_alert", "travel_notification",
        "travel_suggestion", "vaccines",
    ],
    "utility": [
        "alarm", "calculator", "date", "definition", "find_phone", "flip_coin",
        "make_call", "measurement_conversion", "roll_dice", "share_location",
        "spelling", "text", "time", "timer", "weather",
    ],
    "auto_and_commute": [
        "current_location", "directions", "distance", "gas", "gas_type",
        "jump_start", "last_maintenance", "mpg", "oil_change_how",
        "oil_change_when", "schedule_maintenance", "tire_change",
        "tire_pressure", "traffic", "uber",
    ],
    "work": [
        "direct_deposit", "income", "insurance", "insurance_change",
        "meeting_schedule", "next_holiday", "payday", "pto_balance",
        "pto_request", "pto_request_status", "pto_used", "rollover_401k",
        "schedule_meeting", "taxes", "w2",
    ],
    "small_talk": [
        "are_you_a_bot", "do_you_have_pets", "fun_fact", "goodbye", "greeting",
        "how_old_are_you", "meaning_of_life", "tell_joke", "thank_you",
        "what_are_your_hobbies", "what_can_i_ask_you", "what_is_your_name",
        "where_are_you_from", "who_do_you_work_for", "who_made_you",
    ],
    "meta": [
        "cancel", "change_accent", "change_ai_name", "change_language",
        "change_speed", "change_user_name", "change_volume", "maybe", "no",
        "repeat", "reset_settings", "sync_device", "user_name", "whisper_mode",
        "yes",
    ],
    "home": [
        "calendar", "calendar_update", "next_song", "order", "order_status",
        "play_music", "reminder", "reminder_update", "shopping_list",
        "shopping_list_update", "smart_home", "todo_list", "todo_list_update",
        "update_playlist", "what_song",
    ],
}

# Intents of the kept domains that overlap a skill (see module docstring).
CLINC_EXCLUDED_INTENTS = {"order", "order_status", "exchange_rate", "travel_notification", "direct_deposit"}

# CLINC150 oos_test queries that belong to one of this assistant's skills.
# They are exact texts from data_full.json, grouped by the skill they overlap.
OOS_TEST_OVERLAPS = frozenset({
    # medical_triage: own / family symptoms, medication, first aid
    "what should i do if it hurts when i pee",
    "what are the symptoms of cancer",
    "how much sugar was in my urine this morning",
    "what do you do if your 4 year old just ate playdoh",
    "i have a super runny nose and want to find a doctor",
    "which medicine to relieve my cough",
    "how do i get rid of blocked nose at home",
    "how do i get rid of sore throat at home",
    "look up how to apply cream to smooth itchiness",
    "how do i deal with angry, painful red bumps",
    "where should i go if i hammered a nail through my foot",
    "how long does it take to call an ambulance",
    "how to get the right medicine",
    "how to take care of the sick",
    "do i have to put my mouth on theirs when doing cpr",
    "what is the breath to compression ratio for cpr",
    "tell me how to perform cpr",
    "what do you do if you can't stop vomiting",
    "what should i take for a cold",
    "find out how long a cold should last before i call a doctor",
    "what should i take for nausea",
    "how do you relieve a hangover",
    "what is a good home remedy for a rash",
    "i have a rash, what can i use for it",
    "how do i get rid of an itchy rash",
    "i need tips on how to overcome insomnia",
    "how can i get help for my mental health",
    "what should you do if you can't be bothered to get out of bed",
    "where can i get the flu shot",
    "when do i have to get the mmr",
    # credit_scoring: loans, mortgages, credit counselling, debt
    "what's the current prevailing interest rate for mortgages in my area",
    "schedule an appointment with the credit counselor for tuesday",
    "find a credit mentoring service number for me please",
    "i have too many credit cards, is there any way you can help me organize them",
    "find a credit counseling service for me on the web",
    "explain how to reduce my debt burden",
    "look up the current auto loan rate at chase bank",
    "look up student loan offers on google",
    "check current prime mortgage rate",
    "how can i get a better rate on my card",
    "how much time do i have left on my 0% apr",
    "can my grace period be extended any possible way",
    "what is the fee for a cash advance",
    # customer_service: orders, refunds, delivery, account, cards, bank accounts
    "check the status of my amazon orders for me",
    "will amazon ship an order even if there was a pricing mistake",
    "request a refund on the car wax i bought yesterday",
    "how long do i have to wait to get my refund",
    "does dhl deliver to my address",
    "restart my newspaper delivery for monday",
    "cancel my subscription to scientific american",
    "i'd like to renew my subscription to playboy",
    "i need to update my address",
    "how do i add someone to my account",
    "can you delete my saved credit card",
    "can you tell me what credit cards i have open",
    "what is the cashback rate for my credit card",
    "what are the last 4 digits of my credit card number",
    "do i have overdraft protection",
    "how much over will overdraft protection cover",
    "what is my checking account number",
    "can i deposit a check",
    "can i set up mobile deposits",
    "can you sign out of my bank login",
    "do you know if it is possible to close my savings account",
    "how hard is it to close a bank account at wells fargo",
    "add my wife as an authorized user to checking account 20905432",
    "i need to add a person to my bank account",
    "please take all my money out of my checking account and close the account",
    "can i use direct deposit for my tax refund",
    "get me a list of the best savings account rates right now",
    # recommendation: product suggestions, buying or pricing a product
    "i want to find a new car under $25000",
    "what are the highest-rated android phones",
    "what are some good games for my android phone",
    "what is the cheapest new car for this year",
    "show me new cars with the highest safety rating",
    "show me the most popular nonfiction book currently on the market",
    "can you recommend some fiction books",
    "what is a well reviewed book for a teenage girl to read",
    "i want to find new cyberpunk fiction books",
    "i am looking for a suit for work",
    "i need to find a black suit under $100",
    "i would like to find a stylish suit for a party",
    "can you give me suggestions for a professional suit under $200",
    "what is a good laptop for gaming",
    "show me laptops for sale that are under $2,000",
    "i need a laptop with 16gb of ram",
    "what is the best reviewed laptop available on the market",
    "what is a good sink filter for water",
    "what is the highest quality carpet available",
    "what's a good gift to get for your grandparents",
    "fun gift ideas to give to grandparents",
    "how much is the new nikon camera",
    "what kind of camera should i buy",
    "what's the best make-up to cover a black eye",
    "whats the best rated lipstick",
    "i want to buy some nintendo switch game",
    "how much does a nintendo switch cost",
    "show me a cool nintendo switch game",
    "look on amazon for the price of a nitendo switch",
    "what's a good blouse to wear with pink shoes",
    "what are the best jeans in my size",
    "what's the best style shoe to wear to the prom",
    "i'd like to find some curtains that look good in this room",
    "what is the top 10 best modems",
    "how much for a samurai sword",
    "see if you can purchase a spacesuit online",
    "tell me in how many different colors i can get dinner plates from pier one imports",
    "tell me amazon's choice for a set of 4 dinner plates",
    "find out where i can by melamine dinner plates",
    "find out what the maximum memory size is that i can buy in a dvd",
    "tell me who makes the best dvd's for movie storage",
    "i need you to order a new pair of eyeglasses for me",
    "show me examples of cute eyeglass frames",
    "tell me where i can get the cheapest tennis balls on the internet",
    "find the best prices for toothpaste at any store within a 5 mile radius of my location",
    "tell me what the best shampoo is for someone with dry scalp",
    "what's the best price on a gray xl ll bean men's parka",
    "tell me who has the cheapest watch bands on ebay",
    "give me prices on a copy of the mla grammar handbook",
    "where can i get 100% merino wool t-shirts on the internet",
    "show me all listings on amazon for leather belts for men",
    "what is the cost of four double a batteries",
    "what does the average cost of an engagement ring",
    "find a good toy to give a 5 year old boy that costs less than $40",
    "find out where i can buy a barbie doll for my niece",
    "find me a book on motivational speaking from amazon",
    "how much is auto febreeze on amazon",
    "see if you can find a good vegetable wash for me",
    "can you look at what average reviews say about the new windows phone on amazon for me",
    "tell me a summary of reviews that oakley frogskins get on amazon",
    "make me a list of the top ten reviewed hiking boots on jetcom",
    "show me a tabulation of reviews for lcd tv's on amazon",
    "what is appropriate to spend on a bouquet of flowers for mother's day",
    "how much are the clorox detergents",
    "can you tell me who sells dixie paper plates",
    "what are the different types of tvs",
    "what is the best product for removing soap scum",
    "what store has the best deals going on right now",
    "pick out an excerise outfit for me",
    "order me a book of stamps and envelopes",
    "order me a blue pin stripe suit from saville row",
    "can you order some ointment for me",
    'order the new book titled "ghost work"',
})

# CLINC150 oos_val queries that belong to one of this assistant's skills (dev
# split). Exact texts from data_full.json, grouped by the skill they overlap.
OOS_VAL_OVERLAPS = frozenset({
    # medical_triage
    "is flu contagious",
    # credit_scoring: card debt repayment, cash advances
    "how long will it take me to pay off my card if i pay an extra $50 a month over the minimum",
    "what is the purpose or benefit of a cash advance",
    # customer_service: bank account alerts and bank services
    "set a warning for when my bank account starts running low",
    "does our bank have free notary",
    "is the pnc bank open",
    # recommendation: which product to buy, product comparisons and prices
    "is android better than iphone",
    "are androids expensive",
    "are over the ear headphones better than in ear headphones",
    "what brand of earphones is the best reviewed of 2019",
    "what is the cheapest electric guitar",
    "what's the best dog food to feed my puppy",
})

# CLINC150 oos_train queries that belong to one of this assistant's skills
# (dev split top-up; see module docstring).
OOS_TRAIN_OVERLAPS = frozenset({
    # credit_scoring
    "how do i open an online line of credit",
    # customer_service: fees, billing address, transfers, customer service
    "how much is an overdraft fee for bank",
    "how do i change my billing address",
    "how long do wire transfers take",
    "i need to speak to customer service regarding my flight",
    # recommendation: deals, prices, which product to buy
    "what are some deals on amazon",
    "what's the best price on super smash bros ultimate right now",
    "which piano is best for classical",
    "what's the average battery life of an android phone",
})


def unique(texts_and_labels):
    """Drop exact (case-insensitive) duplicate texts, keeping the first in file order."""
    seen, out = set(), []
    for text, label in texts_and_labels:
        key = text.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append((text.strip(), label))
    return out


def load_banking77(folder: Path, filename: str = "test.csv"):
    with open(folder / filename, newline="", encoding="utf-8") as f:
        return unique((row["text"], row["category"]) for row in csv.DictReader(f))


def filter_oos(data, split: str, overlaps: frozenset, name: str):
    """CLINC out-of-scope queries of ``split`` minus ``overlaps`` (which must all occur there)."""
    stale = overlaps - {t.strip().lower() for t, _ in data[split]}
    if stale:
        sys.exit(f"{name} entries not found in {split}: {sorted(stale)[:5]}")
    return unique((t, i) for t, i in data[split] if t.strip().lower() not in overlaps)


def filter_inscope(data, split: str):
    """CLINC in-scope queries of ``split`` whose intent is used as out_of_scope."""
    kept_intents = {i for intents in CLINC_OOS_DOMAINS.values() for i in intents} - CLINC_EXCLUDED_INTENTS
    missing = kept_intents - {i for _, i in data[split]}
    if missing:
        sys.exit(f"intents not found in CLINC150 {split} split: {sorted(missing)}")
    return unique((t, i) for t, i in data[split] if i in kept_intents)


def load_clinc_data(folder: Path):
    with open(folder / "data_full.json", encoding="utf-8") as f:
        return json.load(f)


def load_clinc(folder: Path):
    """Test-split pools: (oos_test minus overlaps, in-scope test of the kept intents)."""
    data = load_clinc_data(folder)
    oos = filter_oos(data, "oos_test", OOS_TEST_OVERLAPS, "OOS_TEST_OVERLAPS")
    return oos, filter_inscope(data, "test")


def load_clinc_dev(folder: Path):
    """Dev-split pools: (oos_val minus overlaps, oos_train minus overlaps, in-scope val)."""
    data = load_clinc_data(folder)
    oos_val = filter_oos(data, "oos_val", OOS_VAL_OVERLAPS, "OOS_VAL_OVERLAPS")
    oos_train = filter_oos(data, "oos_train", OOS_TRAIN_OVERLAPS, "OOS_TRAIN_OVERLAPS")
    return oos_val, oos_train, filter_inscope(data, "val")


def load_handwritten(path: Path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("skill") not in SKILLS or not str(obj.get("text", "")).strip():
                sys.exit(f"{path}:{n}: bad line: {line.strip()}")
            rows.append({"text": obj["text"].strip(), "skill": obj["skill"], "source": "handwritten"})
    return rows


def sample(rng: random.Random, pool, n: int, what: str):
    if len(pool) < n:
        sys.exit(f"{what}: only {len(pool)} texts available, {n} requested")
    return rng.sample(pool, n)


def build_test(rng: random.Random, args):
    rows = []
    for text, _ in sample(rng, load_banking77(args.banking77, "test.csv"), N_BANKING77, "banking77 test"):
        rows.append({"text": text, "skill": "customer_service", "source": "banking77"})
    clinc_oos, clinc_inscope = load_clinc(args.clinc)
    for text, _ in sample(rng, clinc_oos, N_CLINC_OOS, "clinc150 oos_test"):
        rows.append({"text": text, "skill": "out_of_scope", "source": "clinc150_oos"})
    for text, _ in sample(rng, clinc_inscope, N_CLINC_INSCOPE, "clinc150 test"):
        rows.append({"text": text, "skill": "out_of_scope", "source": "clinc150_test"})
    return rows


def build_dev(rng: random.Random, args):
    rows = []
    for text, _ in sample(rng, load_banking77(args.banking77, "train.csv"), N_BANKING77, "banking77 train"):
        rows.append({"text": text, "skill": "customer_service", "source": "banking77_train"})
    oos_val, oos_train, clinc_inscope = load_clinc_dev(args.clinc)
    n_val = min(N_CLINC_OOS, len(oos_val))
    for text, _ in sample(rng, oos_val, n_val, "clinc150 oos_val"):
        rows.append({"text": text, "skill": "out_of_scope", "source": "clinc150_oos_val"})
    for text, _ in sample(rng, oos_train, N_CLINC_OOS - n_val, "clinc150 oos_train"):
        rows.append({"text": text, "skill": "out_of_scope", "source": "clinc150_oos_train"})
    for text, _ in sample(rng, clinc_inscope, N_CLINC_INSCOPE, "clinc150 val"):
        rows.append({"text": text, "skill": "out_of_scope", "source": "clinc150_val"})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("test", "dev"), default="test",
                    help="test: held-out splits only (default); dev: train/validation splits only")
    ap.add_argument("--banking77", type=Path, required=True, help="folder with Banking77 test.csv / train.csv")
    ap.add_argument("--clinc", type=Path, required=True, help="folder with CLINC150 data_full.json")
    ap.add_argument("--handwritten", type=Path, required=True, help="hand-written JSONL {text, skill}")
    ap.add_argument("--out", type=Path, required=True, help="output JSONL {text, skill, source}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    rows = build_dev(rng, args) if args.split == "dev" else build_test(rng, args)
    rows.extend(load_handwritten(args.handwritten))

    seen = Counter(r["text"].lower() for r in rows)
    dups = [t for t, c in seen.items() if c > 1]
    if dups:
        sys.exit(f"duplicate texts across sources: {dups[:5]}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    by_skill = Counter(r["skill"] for r in rows)
    by_source = Counter((r["skill"], r["source"]) for r in rows)
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    for skill in SKILLS:
        parts = ", ".join(f"{src} {n}" for (s, src), n in sorted(by_source.items()) if s == skill)
        print(f"  {skill:<17} {by_skill[skill]:>4}  ({parts})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
