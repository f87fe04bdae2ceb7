"""A stand-in for apt-get (agora/apt.py runs it through a ``run`` argument):
no package is installed by the unit tests."""

import subprocess


class FakeApt:
    """Answers each command with the next return code (0 once they run out),
    and ``output`` on stderr; records the commands in ``commands``."""

    def __init__(self, *codes, output):
        self.codes, self.output, self.commands = list(codes), output, []

    def __call__(self, argv, **kwargs):
        self.commands.append(argv)
        code = self.codes.pop(0) if self.codes else 0
        return subprocess.CompletedProcess(argv, code, stdout="", stderr=self.output)
