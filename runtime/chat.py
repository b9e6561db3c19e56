"""`tritlm run --chat`: an interactive terminal chat. The conversation is rendered with the model's chat
template each turn; only the tokens past what the KV cache already holds are prefilled. The oldest turns
are dropped when the conversation outgrows the context. Ctrl-C stops an answer, Ctrl-D (end of input) exits."""

import sys

from tritlm.runtime.errors import InputError
from tritlm.runtime.generate import Generation, TokenLoop
from tritlm.runtime.sampler import Sampler
from tritlm.runtime.template import ChatTemplate


class Conversation:
    """Messages plus one sequence whose KV cache holds `self.cached` (a prefix of the rendered conversation)."""

    def __init__(self, model, system: str | None = None, answer_room: int | None = None):
        self.model, self.template = model, ChatTemplate(model)
        self.seq = model.new_sequence()
        self.answer_room = answer_room or self.seq.n_ctx // 4  # tokens kept free for the answer
        self.messages = [{"role": "system", "content": system}] if system else []
        self.cached: list[int] = []

    def reply(self, text: str, sampler: Sampler, max_tokens: int | None = None):
        """Adds the user's message and yields the answer's text as it is generated. The answer so far is kept
        in the conversation even if the caller stops early (Ctrl-C)."""
        self.messages.append({"role": "user", "content": text})
        ids = self._fit()
        answer = {"role": "assistant", "content": ""}
        self.messages.append(answer)
        loop = TokenLoop(self.model, sampler, max_tokens or self.seq.n_ctx)
        try:
            for piece in Generation(self.model, self._uncached(ids), loop, self.seq):
                answer["content"] += piece
                yield piece
        finally:  # also on Ctrl-C: the cache holds the first seq.pos tokens of the prompt and the answer
            self.cached = (ids + loop.tokens)[: self.seq.pos]

    def _fit(self) -> list[int]:
        """The prompt ids, dropping the oldest turns (never the system message) until the answer has room."""
        first = 1 if self.messages[0]["role"] == "system" else 0
        while True:
            ids = self.template.tokenize(self.messages)
            if len(ids) + self.answer_room <= self.seq.n_ctx:
                return ids
            if len(self.messages) - first <= 1:
                self.messages.pop()
                raise InputError(
                    f"message too long: {len(ids)} tokens leave no room in a context of "
                    f"{self.seq.n_ctx} (answer room {self.answer_room})"
                )
            del self.messages[first : first + 2]  # the oldest question and its answer

    def _uncached(self, ids) -> list[int]:
        """The ids the cache does not hold yet: the cache keeps its longest common prefix with the prompt (all
        but the prompt's last id at most, which must run again for its logits) and drops the rest."""
        same = 0
        while same < min(len(ids), len(self.cached)) and ids[same] == self.cached[same]:
            same += 1
        same = max(0, min(same, len(ids) - 1))
        self.seq.truncate(same)
        self.cached = self.cached[:same]
        return ids[same:]


def chat(
    model,
    sampler: Sampler,
    max_tokens: int | None = None,
    system: str | None = None,
    stdin=None,
    stdout=None,
) -> int:
    """The read-answer loop on a terminal or a pipe (default: sys.stdin and sys.stdout as they are when called)."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    conversation = Conversation(model, system, answer_room=max_tokens)
    if not conversation.template.has_own_template:
        print(f"note: {model.name} has no chat template; using plain 'role: text' lines", file=sys.stderr)
    print(f"Chatting with {model.name}. Ctrl-C stops an answer, Ctrl-D exits.", file=stdout, flush=True)
    while True:
        print("> ", end="", file=stdout, flush=True)
        try:
            line = stdin.readline()
        except KeyboardInterrupt:
            print(file=stdout)
            continue
        if not line:
            print(file=stdout)
            return 0
        if not line.strip():
            continue
        try:
            for piece in conversation.reply(line.rstrip("\n"), sampler, max_tokens):
                print(piece, end="", file=stdout, flush=True)
        except KeyboardInterrupt:
            print(" [stopped]", end="", file=stdout)
        except InputError as e:  # this message's fault (too long, refused by the template): the chat goes on
            print(f"error: {e}", end="", file=stdout)
        print(file=stdout, flush=True)
