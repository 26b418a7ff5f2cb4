"""Number fields that keep what was typed and say when it is out of range.

Qt's spin boxes drop a keystroke that would leave their range, so typing 1001
into a 1…1000 field silently leaves 100. These fields accept any number typed,
keep it as typed, and :meth:`problem` names the allowed range; the arrows and
the wheel still stay inside it.
"""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QSpinBox, QWidget

_WIDE_INT = 2**31 - 1
_WIDE_FLOAT = 1e9


class _StepsInRange:
    """The arrows and the wheel stay inside ``allowed``, whatever was typed."""

    allowed: tuple[float, float]

    def stepBy(self, steps: int) -> None:
        low, high = self.allowed
        self.setValue(min(high, max(low, self.value() + steps * self.singleStep())))

    def stepEnabled(self) -> QAbstractSpinBox.StepEnabledFlag:
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        if self.value() < self.allowed[1]:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        if self.value() > self.allowed[0]:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        return flags


class BoundedSpinBox(_StepsInRange, QSpinBox):
    """A whole-number field allowing ``minimum``…``maximum``; see the module docstring."""

    def __init__(self, name: str, minimum: int, maximum: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = name
        self.allowed = (minimum, maximum)
        self.setRange(-_WIDE_INT, _WIDE_INT)
        self.setValue(minimum)

    def problem(self) -> str | None:
        """A sentence when the value is outside the allowed range, else None."""
        low, high = self.allowed
        value = self.value()
        if low <= value <= high:
            return None
        return f"{self.name} must be a whole number from {low} to {high}; {value} is out of range."


class BoundedDoubleSpinBox(_StepsInRange, QDoubleSpinBox):
    """A decimal field allowing ``minimum``…``maximum``; see the module docstring."""

    def __init__(
        self, name: str, minimum: float, maximum: float, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.name = name
        self.allowed = (minimum, maximum)
        self.setRange(-_WIDE_FLOAT, _WIDE_FLOAT)
        self.setValue(minimum)

    def problem(self) -> str | None:
        low, high = self.allowed
        value = self.value()
        if low <= value <= high:
            return None
        return f"{self.name} must be a number from {low:g} to {high:g}; {value:g} is out of range."
