#!/usr/bin/env python3
"""`herd chat --docs` on the real small model: ten questions whose answers are invented facts found only in
indexed documents. Retrieval must put the right passage into the prompt every time (asserted); how often the
reply states the fact is printed, with only a weak floor asserted (a 135M model often ignores its sources).

usage: check_rag_smollm2.py HERD TESTS_DATA_DIR. Exits 77 (ctest's skip) when the model is absent.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
from smollm2 import SKIP, present  # noqa: E402

# (file name, document text, question, the fact the answer should hold)
FACTS = [
    ("zorbin.md", "# Zorbin Glacier\n\nThe Zorbin Glacier is 41 kilometres long and feeds Lake Umbrel.\n",
     "How long is the Zorbin Glacier?", "41"),
    ("pellucid.txt", "The Pellucid Institute was founded in the year 1783 by Marguerite Oysterbane.\n",
     "Who founded the Pellucid Institute?", "Oysterbane"),
    ("quasselbrook.md", "## Quasselbrook\n\nThe mayor of Quasselbrook is Hendrik Vallowmere.\n",
     "Who is the mayor of Quasselbrook?", "Vallowmere"),
    ("trindle.html", "<html><body><h1>Trindle fruit</h1><p>The trindle fruit is bright turquoise when ripe.</p>"
     "</body></html>\n", "What colour is a ripe trindle fruit?", "turquoise"),
    ("korvath.txt", "The Korvath Bridge spans the river Elsk and has exactly 17 arches.\n",
     "How many arches does the Korvath Bridge have?", "17"),
    ("mimblewick.md", "# Mimblewick\n\nThe national dish of Mimblewick is roasted parsnip dumplings.\n",
     "What is the national dish of Mimblewick?", "parsnip"),
    ("ostrava9.txt", "The Ostrava-9 probe was launched from the Kestrel Spaceport.\n",
     "From where was the Ostrava-9 probe launched?", "Kestrel"),
    ("fennimore.md", "The Fennimore Orchestra's principal instrument is the glass harmonica.\n",
     "What is the principal instrument of the Fennimore Orchestra?", "harmonica"),
    ("drubnik.txt", "The password to the Drubnik vault is 'copperfinch'.\n",
     "What is the password to the Drubnik vault?", "copperfinch"),
    ("yelloway.md", "## Yelloway Tower\n\nThe Yelloway Tower is 312 metres tall.\n",
     "How tall is the Yelloway Tower?", "312"),
]


def main():
    herd, data = sys.argv[1], sys.argv[2]
    model = present()
    if not model:
        return SKIP
    tmp = tempfile.mkdtemp(prefix="herd-rag-smollm2-")
    try:
        docs = os.path.join(tmp, "docs")
        shutil.copytree(os.path.join(data, "rag", "corpus"), docs)  # distractors
        for name, text, _, _ in FACTS:
            with open(os.path.join(docs, name), "w") as f:
                f.write(text)
        index = os.path.join(tmp, "docs.db")
        p = subprocess.run([herd, "index", "build", docs, "-o", index], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        lines = []
        for i, (_, _, question, _) in enumerate(FACTS):
            lines += [question, f"/save {os.path.join(tmp, f'q{i}.json')}", "/reset"]
        p = subprocess.run([herd, "chat", "-m", model, "--docs", index, "--device", "cpu", "--temp", "0", "-n", "48"],
                           input="".join(l + "\n" for l in lines), capture_output=True, text=True, timeout=500)
        assert p.returncode == 0, p.stderr
        retrieved = answered = 0
        for i, (name, _, question, fact) in enumerate(FACTS):
            msgs = json.load(open(os.path.join(tmp, f"q{i}.json")))["messages"]
            user, reply = msgs[0]["content"], msgs[1]["content"]
            # The right passage is in the prompt, cited as one of the sources.
            ok = f"] {os.path.join(docs, name)}:" in user and fact in user and user.endswith("Question: " + question)
            retrieved += ok
            answered += fact.lower() in reply.lower()
            print(f"{'ok  ' if ok else 'MISS'} {question!r} -> {reply.strip()[:100]!r}")
        print(f"retrieval: the right passage in the prompt {retrieved}/10; the reply states the fact {answered}/10")
        assert retrieved == 10, "retrieval missed a passage"
        assert answered >= 3, "the model stated fewer than 3 of 10 facts from its sources"
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
