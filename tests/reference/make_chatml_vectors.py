#!/usr/bin/env python3
"""ChatML prompts rendered by Jinja2 (as transformers renders chat templates), for herd's ChatML
renderer. Offline: pip install jinja2 gguf; python3 tests/reference/make_chatml_vectors.py MODEL.gguf

Writes tests/data/chat/chatml.jsonl: one row per (template, conversation) with the template text,
the messages, add_generation_prompt and the rendered prompt. Templates: SmolLM2-135M-Instruct's
(read from the GGUF file; it adds a default system turn) and the plain ChatML template.
"""
import json
import sys
from pathlib import Path

import jinja2
from gguf import GGUFReader

OUT = Path(__file__).resolve().parent.parent / "data" / "chat" / "chatml.jsonl"
PLAIN = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
         "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi!"}],
    [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "And times 3?\nShow the steps."}],
    [{"role": "user", "content": "ünïcödé and <|im_end|> inside content"}],
    [],
]


def main():
    smol = GGUFReader(sys.argv[1]).fields["tokenizer.chat_template"].contents()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # transformers' settings
    with OUT.open("w", encoding="utf-8") as f:
        for name, tmpl in [("smollm2", smol), ("plain", PLAIN)]:
            t = env.from_string(tmpl)
            for i, messages in enumerate(CONVERSATIONS):
                for gen in (True, False):
                    if not messages and not gen:
                        continue
                    row = {"name": f"{name}-{i}-{'gen' if gen else 'nogen'}", "template": tmpl, "messages": messages,
                           "add_generation_prompt": gen, "prompt": t.render(messages=messages, add_generation_prompt=gen)}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
