"""The prompt and seed panel: one widget per Recipe field, and the branch banner."""

from __future__ import annotations

import random
import re

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QColor, QRegularExpressionValidator, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.engine.memory import SizeBudget
from studio.engine.recipe import (
    BUNDLED_MODEL,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    Recipe,
    RecipeError,
)
from studio.engine.schedulers import DEFAULT_SAMPLER, SAMPLERS
from studio.session import BranchTarget
from studio.ui.bounded_fields import BoundedDoubleSpinBox, BoundedSpinBox

TOKEN_LIMIT = 75
"""What Stable Diffusion's encoders read of a prompt (77 less the start and end tokens),
shown until the model's own tokenizer answers."""
UNKNOWN_COLOUR = "#e0564a"
_SEED_RE = QRegularExpression(r"\d{0,20}")


class PromptPanel(QWidget):
    """Edits a Recipe. Every field maps to one Recipe field; :meth:`recipe` reads them all.

    In branch mode the panel also names a :class:`BranchTarget`, and the fields
    a resumed run cannot change (steps, sampler, size, model, variation) are locked.
    """

    generate_requested = Signal()
    cancel_requested = Signal()
    recipe_edited = Signal()
    recipe_set = Signal()  # every field was filled from a recipe (set_recipe)
    model_changed = Signal(str)
    add_model_folder_requested = Signal()
    branch_cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._branch: BranchTarget | None = None
        self._seed_random_before_branch = True
        self._size_factor = 8
        self._budget = SizeBudget()
        self._token_limit = TOKEN_LIMIT

        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Describe the image…")
        self.prompt.setTabChangesFocus(True)
        self.prompt.setFixedHeight(84)
        self.prompt_tokens = QLabel()
        self.negative = QPlainTextEdit()
        self.negative.setPlaceholderText("What to steer away from (optional)")
        self.negative.setTabChangesFocus(True)
        self.negative.setFixedHeight(52)
        self.negative_tokens = QLabel()
        for label in (self.prompt_tokens, self.negative_tokens):
            label.setAlignment(Qt.AlignmentFlag.AlignRight)
            label.setStyleSheet("color: palette(mid); font-size: 11px;")

        self.seed = QLineEdit("0")
        self.seed.setValidator(QRegularExpressionValidator(_SEED_RE, self))
        self.seed_random = QToolButton()
        self.seed_random.setText("random")
        self.seed_random.setCheckable(True)
        self.seed_random.setChecked(True)
        self.seed_random.setToolTip("On: a new seed for every generation. Off: keep this seed.")
        self.dice = QToolButton()
        self.dice.setText("⚄")
        self.dice.setToolTip("Roll a new seed now")

        self.steps = BoundedSpinBox("Steps", 1, MAX_STEPS)
        self.steps.setValue(20)
        self.guidance = BoundedDoubleSpinBox("CFG scale", 0.0, 50.0)
        self.guidance.setSingleStep(0.5)
        self.guidance.setDecimals(2)
        self.guidance.setValue(7.0)
        self.sampler = QComboBox()
        self.sampler.addItems(SAMPLERS)
        self.sampler.setCurrentText(DEFAULT_SAMPLER)
        self.width_box = BoundedSpinBox("Width", MIN_SIDE, MAX_SIDE)
        self.height_box = BoundedSpinBox("Height", MIN_SIDE, MAX_SIDE)
        for box in (self.width_box, self.height_box):
            box.setSingleStep(8)
            box.setValue(64)
            box.setSuffix(" px")
        self.model = QComboBox()
        self.model.setMinimumContentsLength(12)
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.addItem("noise-world (bundled)", BUNDLED_MODEL)
        self.add_folder = QToolButton()
        self.add_folder.setText("+")
        self.add_folder.setToolTip("Add a folder of models")
        self.model_note = QLabel()
        self.model_note.setWordWrap(True)
        self.model_note.setTextFormat(Qt.TextFormat.PlainText)
        self.model_note.setStyleSheet("color: palette(mid); font-size: 11px;")
        self.model_note.hide()
        self.preview_note = QLabel()
        self.preview_note.setTextFormat(Qt.TextFormat.PlainText)
        self.preview_note.setStyleSheet("color: palette(mid); font-size: 11px;")
        self.preview_note.setToolTip(
            "How each step is previewed while it runs: a tiny decoder at full size, or the "
            "linear latent→RGB map where the model has none"
        )
        self.preview_note.hide()
        self.size_note = QLabel()
        self.size_note.setWordWrap(True)
        self.size_note.setStyleSheet("color: #e0a030; font-size: 11px;")
        self.size_note.hide()

        self.variation_seed = self._optional_seed_field()
        self.variation_strength = _strength_box("Variation strength")

        self.branch_label = QLabel()
        self.branch_label.setWordWrap(True)
        self.branch_leave = QPushButton("Leave branch mode")
        self.renoise_seed = self._optional_seed_field()
        self.renoise_strength = _strength_box("Branch noise strength")

        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #e0564a;")
        self.error.hide()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running generation (Esc)")

        self._layout()
        self._connect()
        self.update_approximate_tokens()

    # ---- layout ------------------------------------------------------------------

    def _optional_seed_field(self) -> QLineEdit:
        """A seed that may stay empty ("none")."""
        field = QLineEdit()
        field.setPlaceholderText("none")
        field.setValidator(QRegularExpressionValidator(_SEED_RE, self))
        return field

    def _layout(self) -> None:
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.seed_random)
        seed_row.addWidget(self.dice)
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_box)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_box)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.add_folder)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Seed", seed_row)
        form.addRow("Steps", self.steps)
        form.addRow("CFG", self.guidance)
        form.addRow("Sampler", self.sampler)
        form.addRow("Size", size_row)
        form.addRow("", self.size_note)
        form.addRow("Model", model_row)
        form.addRow("", self.preview_note)
        form.addRow("", self.model_note)

        self.variation_group = QGroupBox("Variation")
        variation_form = QFormLayout(self.variation_group)
        variation_form.addRow("Seed", self.variation_seed)
        variation_form.addRow("Strength", self.variation_strength)

        self.branch_group = QGroupBox("Branch")
        branch_form = QFormLayout(self.branch_group)
        branch_form.addRow(self.branch_label)
        branch_form.addRow("Noise seed", self.renoise_seed)
        branch_form.addRow("Noise strength", self.renoise_strength)
        branch_form.addRow(self.branch_leave)
        self.branch_group.hide()

        # Generate and Cancel sit in their own row, which the window pins below the scrolling
        # form so they stay on screen at any height.
        self.button_row = QWidget()
        buttons = QHBoxLayout(self.button_row)
        buttons.setContentsMargins(9, 4, 9, 6)
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Prompt"))
        layout.addWidget(self.prompt)
        layout.addWidget(self.prompt_tokens)
        layout.addWidget(QLabel("Negative prompt"))
        layout.addWidget(self.negative)
        layout.addWidget(self.negative_tokens)
        layout.addLayout(form)
        layout.addWidget(self.variation_group)
        layout.addWidget(self.branch_group)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        layout.addWidget(line)
        layout.addWidget(self.error)
        layout.addStretch(1)

    def _connect(self) -> None:
        for edit in (self.prompt, self.negative):
            edit.textChanged.connect(self.update_approximate_tokens)
            edit.textChanged.connect(self.recipe_edited)
        for line in (self.seed, self.variation_seed, self.renoise_seed):
            line.textChanged.connect(self.recipe_edited)
        for spin in (self.steps, self.width_box, self.height_box):
            spin.valueChanged.connect(self.recipe_edited)
        for box in (self.width_box, self.height_box):
            box.valueChanged.connect(self._update_size_note)
        self.seed.textEdited.connect(self._seed_typed)
        for dspin in (self.guidance, self.variation_strength, self.renoise_strength):
            dspin.valueChanged.connect(self.recipe_edited)
        self.sampler.currentTextChanged.connect(self.recipe_edited)
        self.model.currentIndexChanged.connect(self._on_model_index)
        self.dice.clicked.connect(self.roll_seed)
        self.seed_random.toggled.connect(
            lambda on: self.seed_random.setText("random" if on else "fixed")
        )
        self.add_folder.clicked.connect(self.add_model_folder_requested)
        self.generate_button.clicked.connect(self.generate_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.branch_leave.clicked.connect(self._leave_clicked)

    # ---- the recipe ------------------------------------------------------------------

    def recipe(self) -> Recipe:
        """The Recipe the fields describe; raises RecipeError if a field cannot be read,
        holds a number outside its range (kept as typed), or asks for a size that needs
        more memory than the device has."""
        seed = _parse_seed(self.seed.text(), "seed")
        if seed is None:
            raise RecipeError("Enter a seed, or switch the seed to random.")
        for box in self._number_fields():
            problem = box.problem()
            if problem:
                raise RecipeError(problem)
        refusal = self._budget.refusal(self.width_box.value(), self.height_box.value())
        if refusal:
            raise RecipeError(refusal)
        return Recipe(
            prompt=self.prompt.toPlainText(),
            negative_prompt=self.negative.toPlainText(),
            seed=seed,
            steps=self.steps.value(),
            guidance=round(self.guidance.value(), 4),
            sampler=self.sampler.currentText(),
            width=self.width_box.value(),
            height=self.height_box.value(),
            model=self.model_ref(),
            variation_seed=_parse_seed(self.variation_seed.text(), "variation seed"),
            variation_strength=round(self.variation_strength.value(), 4),
            renoise_seed=_parse_seed(self.renoise_seed.text(), "branch noise seed")
            if self._branch
            else None,
            renoise_strength=round(self.renoise_strength.value(), 4) if self._branch else 0.0,
        )

    def set_recipe(self, recipe: Recipe) -> None:
        """Fill every field from ``recipe``; the seed becomes fixed so it is kept as shown."""
        self.prompt.setPlainText(recipe.prompt)
        self.negative.setPlainText(recipe.negative_prompt)
        self.seed_random.setChecked(False)
        self.seed.setText(str(recipe.seed))
        self.steps.setValue(recipe.steps)
        self.guidance.setValue(recipe.guidance)
        if self.sampler.findText(recipe.sampler) < 0:
            self.sampler.addItem(recipe.sampler)
        self.sampler.setCurrentText(recipe.sampler)
        self.width_box.setValue(recipe.width)
        self.height_box.setValue(recipe.height)
        self.select_model(recipe.model)
        self.variation_seed.setText(_seed_text(recipe.variation_seed))
        self.variation_strength.setValue(recipe.variation_strength)
        self.renoise_seed.setText(_seed_text(recipe.renoise_seed))
        self.renoise_strength.setValue(recipe.renoise_strength)
        self.recipe_set.emit()

    def set_imported_recipe(self, recipe: Recipe) -> None:
        """Fill every field but the model from a recipe read from a file (an image's metadata).

        A recipe from a file never loads a model by itself: the picker keeps the
        model the user chose, and the model the recipe names is shown as a note
        for the user to pick. A model that is not in the picker's list (not in
        the user's model folders) is shown by its file name only, never offered.
        """
        self.set_recipe(recipe.with_changes(model=self.model_ref()))
        named = recipe.model
        if named == self.model_ref():
            self.show_model_note(None)
            return
        index = self.model.findData(named)
        if index >= 0:
            self.show_model_note(
                f"The recipe was made with {self.model.itemText(index)}; pick it above to use it."
            )
        else:
            self.show_model_note(
                f"The recipe was made with {_model_label(named)[:80]}, "
                "which is not in your model folders."
            )

    def show_preview_in_use(self, preview: str) -> None:
        """Name the loaded model's step preview under the picker ("tiny decoder (taesd)")."""
        self.preview_note.setText(f"Preview: {preview}" if preview else "")
        self.preview_note.setVisible(bool(preview))

    def show_model_note(self, text: str | None) -> None:
        self.model_note.setText(text or "")
        self.model_note.setVisible(bool(text))

    def _number_fields(self) -> tuple[BoundedSpinBox | BoundedDoubleSpinBox, ...]:
        fields = [self.steps, self.guidance, self.width_box, self.height_box]
        fields.append(self.variation_strength)
        if self._branch is not None:
            fields.append(self.renoise_strength)
        return tuple(fields)

    def _seed_typed(self, _text: str) -> None:
        # A seed the user typed is the seed they want: keep it rather than roll another.
        self.seed_random.setChecked(False)

    def roll_seed(self) -> None:
        self.seed.setText(str(random.randrange(0, 2**32)))

    def prepare_for_generation(self) -> None:
        """Roll the seed if it is random, so the field shows the seed actually used."""
        if self.seed_random.isChecked() or not self.seed.text().strip():
            self.roll_seed()

    # ---- models ------------------------------------------------------------------------

    def model_ref(self) -> str:
        return self.model.currentData() or BUNDLED_MODEL

    def select_model(self, ref: str, label: str | None = None) -> None:
        index = self.model.findData(ref)
        if index < 0:
            self.model.addItem(label or _model_label(ref), ref)
            index = self.model.count() - 1
        self.model.setCurrentIndex(index)

    def set_models(self, models: list[tuple[str, str]]) -> None:
        """Replace the picker's list with (label, ref) pairs, keeping the current choice."""
        current = self.model_ref()
        self.model.blockSignals(True)
        self.model.clear()
        for label, ref in models:
            self.model.addItem(label, ref)
        self.model.blockSignals(False)
        self.select_model(current)

    def set_size_factor(self, factor: int, budget: SizeBudget | None = None) -> None:
        """The loaded model's size step and, with ``budget``, its native size and memory
        needs, for the note under the size and the refusal of a size the device cannot run."""
        self._size_factor = max(1, factor)
        for box in (self.width_box, self.height_box):
            box.setSingleStep(self._size_factor)
        if budget is not None:
            self._budget = budget
            self._update_size_note()

    def _update_size_note(self, *_args: object) -> None:
        width, height = self.width_box.value(), self.height_box.value()
        note = self._budget.refusal(width, height) or self._budget.warning(width, height)
        self.size_note.setText(note or "")
        self.size_note.setVisible(bool(note))

    def _on_model_index(self, _index: int) -> None:
        self.show_model_note(None)
        self.model_changed.emit(self.model_ref())
        self.recipe_edited.emit()

    # ---- branch mode -------------------------------------------------------------------

    def branch_target(self) -> BranchTarget | None:
        return self._branch

    def enter_branch_mode(self, target: BranchTarget, recipe: Recipe, description: str) -> None:
        """Fill the fields with ``recipe`` and resume after ``target`` on the next Generate.

        The seed becomes fixed (a branch keeps its parent's seed); leaving branch mode
        gives back the seed mode the user had before."""
        if self._branch is None:
            self._seed_random_before_branch = self.seed_random.isChecked()
        self.set_recipe(recipe)
        self._branch = target
        self.branch_label.setText(description)
        self.branch_group.show()
        self._set_trajectory_fields_enabled(False)
        self.generate_button.setText("Generate branch")
        self.recipe_edited.emit()

    def move_branch_point(self, target: BranchTarget, description: str) -> None:
        """Branch from another step; the fields keep what the user typed."""
        if self._branch is not None:
            self._branch = target
            self.branch_label.setText(description)

    def leave_branch_mode(self) -> None:
        if self._branch is not None:
            self.seed_random.setChecked(self._seed_random_before_branch)
        self._branch = None
        self.branch_group.hide()
        self._set_trajectory_fields_enabled(True)
        self.renoise_seed.clear()
        self.renoise_strength.setValue(0.0)
        self.generate_button.setText("Generate")
        self.recipe_edited.emit()

    def _set_trajectory_fields_enabled(self, enabled: bool) -> None:
        # A branch resumes a stored trajectory, so what shaped it must stay as it was.
        for widget in (
            self.steps,
            self.sampler,
            self.width_box,
            self.height_box,
            self.model,
            self.add_folder,
        ):
            widget.setEnabled(enabled)
        self.variation_group.setEnabled(enabled)

    def _leave_clicked(self) -> None:
        self.leave_branch_mode()
        self.branch_cancelled.emit()

    # ---- feedback ------------------------------------------------------------------------

    def show_error(self, text: str | None) -> None:
        self.error.setText(text or "")
        self.error.setVisible(bool(text))

    def error_text(self) -> str:
        return self.error.text() if self.error.isVisibleTo(self) else ""

    def update_approximate_tokens(self) -> None:
        """Count words until the model's tokenizer can answer (see :meth:`set_token_info`).

        One convention throughout: "N / L tokens" with L the tokens the encoder reads,
        "≈" while N is a word count rather than the tokenizer's."""
        for edit, label in (
            (self.prompt, self.prompt_tokens),
            (self.negative, self.negative_tokens),
        ):
            words = len(edit.toPlainText().split())
            mark = "≈" if words else ""
            label.setText(f"{mark}{words} / {self._token_limit} tokens")
            label.setStyleSheet("color: palette(mid); font-size: 11px;")
            edit.setExtraSelections([])  # marks of unknown words return with the next count

    def set_token_info(
        self, text: str, used: int, limit: int, dropped: str, unknown: tuple[str, ...] = ()
    ) -> None:
        """Show the tokenizer's count for whichever field still holds ``text``, list the
        words the model does not know under it and underline them in the field."""
        self._token_limit = limit
        for edit, label in (
            (self.prompt, self.prompt_tokens),
            (self.negative, self.negative_tokens),
        ):
            if edit.toPlainText() != text:
                continue
            message = f"{used} / {limit} tokens"
            if unknown:
                message += f"\nunknown to this model: {', '.join(unknown)[:120]}"
            if dropped:
                message += f" — dropped: {dropped[:60]}"
            warn = bool(dropped or unknown)
            colour = "#e0a030" if warn else "palette(mid)"
            label.setStyleSheet(f"color: {colour}; font-size: 11px;")
            label.setText(message)
            edit.setExtraSelections(_underlines(edit, text, unknown))

    def unknown_words_marked(self, edit: QPlainTextEdit) -> list[str]:
        """The words underlined as unknown in ``edit``, as they appear there."""
        return [sel.cursor.selectedText() for sel in edit.extraSelections()]


def _parse_seed(text: str, name: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    value = int(text)
    if value > MAX_SEED:
        raise RecipeError(f"The {name} must be a whole number from 0 to 2^64-1.")
    return value


def _seed_text(seed: int | None) -> str:
    return "" if seed is None else str(seed)


def _strength_box(name: str) -> BoundedDoubleSpinBox:
    box = BoundedDoubleSpinBox(name, 0.0, 1.0)
    box.setSingleStep(0.05)
    return box


def _underlines(
    edit: QPlainTextEdit, text: str, words: tuple[str, ...]
) -> list[QTextEdit.ExtraSelection]:
    """A red wavy underline on every whole-word occurrence of ``words`` in ``text``."""
    if not words:
        return []
    char_format = QTextCharFormat()
    char_format.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
    char_format.setUnderlineColor(QColor(UNKNOWN_COLOUR))
    pattern = re.compile(
        r"(?<![^\W\d_])(?:" + "|".join(map(re.escape, words)) + r")(?![^\W\d_])", re.IGNORECASE
    )
    selections = []
    for match in pattern.finditer(text):
        selection = QTextEdit.ExtraSelection()
        cursor = QTextCursor(edit.document())
        cursor.setPosition(match.start())
        cursor.setPosition(match.end(), QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = cursor
        selection.format = char_format
        selections.append(selection)
    return selections


def _model_label(ref: str) -> str:
    if ref == BUNDLED_MODEL:
        return "noise-world (bundled)"
    return ref.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or ref
