"""The grammar-tutor scenario of the lab seed: a canonical conjugation table and its eval set.

Every item is a sentence with one verb slot, a student's (possibly wrong) form and the correct
form, bucketed by tense, person and verb. Model A (baseline) over-regularises some irregular
verbs ("I goed"); model B (the candidate) knows the table. Both are deterministic. Each table
entry has a citation id (``conj-table:<verb>``) that answers built from it cite.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PERSONS = ("I", "you", "he", "we", "they")
# verb: (base, third-person present, past, wrong regularised past)
VERBS: dict[str, tuple[str, str, str, str]] = {
    "go": ("go", "goes", "went", "goed"),
    "eat": ("eat", "eats", "ate", "eated"),
    "see": ("see", "sees", "saw", "seed"),
    "write": ("write", "writes", "wrote", "writed"),
    "take": ("take", "takes", "took", "taked"),
    "walk": ("walk", "walks", "walked", "walkt"),
    "play": ("play", "plays", "played", "plaied"),
    "buy": ("buy", "buys", "bought", "buyed"),
}
TENSES = ("present", "past")
OBJECTS = {
    "go": "to school",
    "eat": "an apple",
    "see": "the film",
    "write": "a letter",
    "take": "the bus",
    "walk": "to the park",
    "play": "chess",
    "buy": "some bread",
}
TIME = {"present": "every day", "past": "yesterday"}


def citation_id(verb: str) -> str:
    """The id of the conjugation-table entry for ``verb`` (what a correct answer cites)."""
    return f"conj-table:{verb}"


def conjugate(verb: str, tense: str, person: str) -> str:
    base, third, past, _wrong = VERBS[verb]
    if tense == "past":
        return past
    return third if person == "he" else base


@dataclass(frozen=True, slots=True)
class Item:
    verb: str
    tense: str
    person: str
    student_form: str

    @property
    def sentence(self) -> str:
        return f"{self.person.capitalize()} {self.student_form} {OBJECTS[self.verb]} {TIME[self.tense]}."

    @property
    def correct(self) -> str:
        form = conjugate(self.verb, self.tense, self.person)
        return f"{self.person.capitalize()} {form} {OBJECTS[self.verb]} {TIME[self.tense]}."


def item_at(i: int, seed: int = 0) -> Item:
    """The ``i``-th item of the eval set: the grid cycled, about half carrying a student error."""
    verb = list(VERBS)[i % len(VERBS)]
    tense = TENSES[(i // len(VERBS)) % 2]
    person = PERSONS[(i // (len(VERBS) * 2)) % len(PERSONS)]
    wrong = hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=2).digest()[0] % 2 == 0
    if wrong:
        form = VERBS[verb][3] if tense == "past" else VERBS[verb][0 if person == "he" else 1]
    else:
        form = conjugate(verb, tense, person)
    return Item(verb, tense, person, form)


def eval_set(n: int, seed: int = 0) -> list[Item]:
    """The first ``n`` items (see :func:`item_at`)."""
    return [item_at(i, seed) for i in range(n)]


def parse_sentence(sentence: str) -> tuple[str, str, str] | None:
    """(verb, tense, person) from a sentence the eval set produced, else None."""
    words = sentence.rstrip(".").split()
    if len(words) < 3:
        return None
    person = words[0].lower()
    person = "I" if person == "i" else person
    tense = "past" if sentence.rstrip(".").endswith("yesterday") else "present"
    form = words[1]
    for verb, forms in VERBS.items():
        if form in forms:
            return verb, tense, person
    return None
