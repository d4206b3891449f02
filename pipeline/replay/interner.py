"""Codes for strings many rows share (episodes, campaigns), released when no held row uses them.

Rows store an int32 code; each distinct string is kept once, and the ring's evictions give codes back instead
of growing forever.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class Interner:
    def __init__(self) -> None:
        self.array: npt.NDArray[Any] = np.empty(64, dtype=object)  # names by code (np.take of a batch)
        self._code: dict[str, int] = {}
        self._refs: list[int] = []
        self._free: list[int] = []

    def acquire(self, name: str) -> int:
        code = self._code.get(name)
        if code is None:
            if self._free:
                code = self._free.pop()
                self._refs[code] = 0
            else:
                code = len(self._refs)
                self._refs.append(0)
                if code == len(self.array):
                    self.array = np.concatenate([self.array, np.empty(len(self.array), dtype=object)])
            self.array[code] = name
            self._code[name] = code
        self._refs[code] += 1
        return code

    def release(self, code: int) -> None:
        self._refs[code] -= 1
        if self._refs[code] == 0:
            del self._code[self.array[code]]
            self.array[code] = ""
            self._free.append(code)

    def name(self, code: int) -> str:
        name: str = self.array[code]
        return name

    def lookup(self, name: str) -> int:
        """The code of a held name, −1 if none."""
        return self._code.get(name, -1)

    def __len__(self) -> int:
        return len(self._code)
