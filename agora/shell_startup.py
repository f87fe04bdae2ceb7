"""Run by `make shell` (`agora shell`) before the prompt: operator helpers.

`n.rpc.<service>.<method>(...)` calls any service (Nameko's shell). And:

    dead_letters()                      every dead letter, one summary each
    dead_letters("billing")             one service's
    show_dead_letter("billing", ID)     headers and event of one
    replay_dead_letters("billing")      all of a service's, back to their handlers
    replay_dead_letters("billing", ID)  just one
    discard_dead_letter("billing", ID)  drop one for good
"""

import functools as _functools

from agora import deadletters as _deadletters

# The validated config `agora shell` rendered for Nameko (re-reading config/
# here would go through Nameko's YAML loader, which rewrites ${VAR} itself).
_config = n.config["AGORA"]  # noqa: F821 (Nameko's shell defines n)
dead_letters = _functools.partial(_deadletters.dead_letters, _config)
show_dead_letter = _functools.partial(_deadletters.show_dead_letter, _config)
replay_dead_letters = _functools.partial(_deadletters.replay_dead_letters, _config)
discard_dead_letter = _functools.partial(_deadletters.discard_dead_letter, _config)
print(__doc__.split("\n", 2)[2])
