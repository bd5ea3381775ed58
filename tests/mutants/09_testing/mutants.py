"""Deliberately broken versions of ``course/lessons/prompt_kit.py``, for chapter 9's exercise.

Learners write tests for ``prompt_kit``; ``tests/test_09_testing.py`` runs those tests
against the correct module, against ``equivalent.py`` (the same behaviour written
differently: tests must pass on it too) and against each mutant below. A mutant is one
small, plausible edit to the correct source: ``(find, replace)``, where ``find`` must
occur exactly once. Keep this folder out of the book and out of ``exercises/``.
"""

MUTANTS: dict[str, tuple[str, str]] = {
    # fit_history
    "budget_boundary": (
        "if used + cost > budget:",
        "if used + cost >= budget:",
    ),
    "system_dropped": (
        'system = list(history[:1]) if history and history[0].role == "system" else []',
        "system: list[Message] = []",
    ),
    "history_order": (
        "    kept.reverse()\n",
        "",
    ),
    "skip_not_stop": (
        "            break\n        kept.append(message)",
        "            continue\n        kept.append(message)",
    ),
    # build_messages and render_question
    "question_not_budgeted": (
        "fit_history(conversation, budget - message_tokens(user))",
        "fit_history(conversation, budget)",
    ),
    "sources_from_zero": (
        "enumerate(documents, start=1)",
        "enumerate(documents)",
    ),
    # parse_answer
    "prose_around_json": (
        "data = json.loads(reply[start : end + 1])",
        "data = json.loads(reply)",
    ),
    "confidence_range": (
        "if not 0 <= confidence <= 1:",
        "if confidence < 0:",
    ),
    # ask
    "no_repair_retry": (
        "    except ParseError as exc:\n        repair = [",
        "    except ParseError as exc:\n        raise exc\n        repair = [",
    ),
    "repair_without_reply": (
        '            {"role": "assistant", "content": reply},\n',
        "",
    ),
    # HTTPChatClient
    "retry_after_ignored": (
        'raise RateLimited(_seconds(response.headers.get("retry-after")))',
        "raise RateLimited(1.0)",
    ),
    "request_body": (
        ', "temperature": self.temperature}',
        "}",
    ),
}


def mutate(source: str, name: str) -> str:
    """The correct source with mutant ``name``'s edit applied; fails loudly if it no longer fits."""
    find, replace = MUTANTS[name]
    count = source.count(find)
    if count != 1:
        raise ValueError(f"mutant {name}: its text occurs {count} times in prompt_kit.py, not once")
    return source.replace(find, replace)
