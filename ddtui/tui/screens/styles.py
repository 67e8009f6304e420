"""The Styles screen: styles (create, edit, delete, with a live preview) and the prompt library (snippets).

A style's text is checked as it is typed (`check_style_text`): a broken placeholder is shown, with the
StyleError message, under the field it is in, and such a style is never saved. The preview applies the style
(`apply_style`) to the Generate screen's prompt (`app.current_prompt`) or, while that is empty, to a
sample. Inserting a snippet calls `app.open_in_generate({"insert": text})` and counts
the use; the library is sorted by use (or by label).
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Footer, Input, Label, OptionList, Static, TabbedContent, TabPane, TextArea
from textual.widgets.option_list import Option

from ...core.styles import PLACEHOLDER, StyleError, apply_style
from ..prompt_library import (
    SnippetData,
    SnippetError,
    StyleData,
    count_snippet_use,
    delete_snippet,
    delete_style,
    field_errors,
    list_snippets,
    list_styles,
    save_snippet,
    save_style_data,
)
from .base import ConfirmDialog, MainScreen, ScreenPaletteCommands, title_bars

SAMPLE_PROMPT = "a lighthouse on a cliff at dusk"
SNIPPET_SORTS = ("use", "label")


class StylesScreen(MainScreen[None]):
    """Styles with a live preview, and the prompt library of reusable snippets."""

    CSS_PATH = "styles.tcss"
    TITLE = "Styles"
    COMMANDS = {ScreenPaletteCommands}

    BINDINGS = [
        Binding("n", "new", "New", id="styles.new"),
        Binding("ctrl+s", "save", "Save", priority=True, id="styles.save"),
        Binding("d,delete", "delete", "Delete", id="styles.delete"),
        Binding("i", "insert_snippet", "Insert in Generate", id="styles.insert"),
        Binding("s", "toggle_sort", "Sort", id="styles.sort"),
        Binding("t", "toggle_tab", "Styles/library", id="styles.tab"),
        Binding("escape", "focus_list", "Back to the list", show=False, id="styles.list"),
    ]

    PALETTE: ClassVar[list[tuple[str, str, str]]] = [
        ("Styles: new style or snippet", "new", "key n"),
        ("Styles: save", "save", "ctrl+s"),
        ("Styles: delete", "delete", "key d"),
        ("Styles: insert the snippet in the Generate prompt", "insert_snippet", "key i or enter"),
        ("Styles: sort the prompt library by use or label", "toggle_sort", "key s"),
        ("Styles: back to the list", "focus_list", "escape"),
        ("Styles: switch between styles and the prompt library", "toggle_tab", "key t"),
        ("Styles: show the styles", "show_tab('tab-styles')", ""),
        ("Styles: show the prompt library", "show_tab('tab-snippets')", ""),
    ]

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.style_items: list[StyleData] = []
        self.snippets: list[SnippetData] = []
        self.editing_style: StyleData | None = None
        self.snippet: SnippetData | None = None
        self.snippet_sort = "use"
        self._style_after_load: int | None = None
        self._snippet_after_load: int | None = None

    def compose(self) -> ComposeResult:
        yield from title_bars()
        with TabbedContent(id="styles-tabs", initial="tab-styles"):
            with TabPane("Styles", id="tab-styles"):
                with Horizontal(classes="styles-body"):
                    yield OptionList(id="style-list")
                    with VerticalScroll(id="style-editor"):
                        yield Label("", id="style-title", classes="styles-title")
                        yield Label("Name")
                        yield Input(id="style-name", placeholder="a short name")
                        yield Label("", id="style-name-error", classes="styles-error")
                        yield Label(f"Prompt ({PLACEHOLDER} marks where your prompt goes; without it the style "
                                    "is appended)", markup=False)
                        yield TextArea(id="style-prompt", classes="styles-text")
                        yield Label("", id="style-prompt-error", classes="styles-error")
                        yield Label("Negative prompt (merged with yours)")
                        yield TextArea(id="style-negative", classes="styles-text")
                        yield Label("", id="style-negative-error", classes="styles-error")
                        yield Label("Preview with this prompt")
                        yield Input(id="style-sample")
                        yield Static("", id="style-preview", markup=False)
            with TabPane("Prompt library", id="tab-snippets"):
                with Horizontal(classes="styles-body"):
                    yield DataTable(id="snippet-table", cursor_type="row", zebra_stripes=True)
                    with VerticalScroll(id="snippet-editor"):
                        yield Label("", id="snippet-title", classes="styles-title")
                        yield Label("Label")
                        yield Input(id="snippet-label")
                        yield Label("Category")
                        yield Input(id="snippet-category", placeholder="general")
                        yield Label("Text")
                        yield TextArea(id="snippet-content", classes="styles-text")
                        yield Label("", id="snippet-error", classes="styles-error")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#snippet-table", DataTable)
        table.add_column("Label", key="label", width=24)
        table.add_column("Category", key="category", width=12)
        table.add_column("Uses", key="uses", width=5)
        table.add_column("Text", key="text", width=60)
        self.query_one("#style-sample", Input).value = self._current_prompt()
        self._edit_style(None)
        self._edit_snippet(None)
        self.query_one("#style-list", OptionList).focus()
        self._reload_styles()
        self._reload_snippets()

    def on_screen_resume(self) -> None:
        sample = self.query_one("#style-sample", Input)
        current = self._current_prompt()
        if current != SAMPLE_PROMPT and sample.value != current:
            sample.value = current

    def _current_prompt(self) -> str:
        current = self.app.current_prompt
        return current if current.strip() else SAMPLE_PROMPT

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("insert_snippet", "toggle_sort") and self.is_mounted:
            return True if self.on_snippets else None  # shown dimmed on the styles tab
        return True

    @on(TabbedContent.TabActivated, "#styles-tabs")
    def _tab_changed(self) -> None:
        self.refresh_bindings()

    @property
    def on_snippets(self) -> bool:
        return self.query_one("#styles-tabs", TabbedContent).active == "tab-snippets"

    # ------------------------------------------------------------------ styles

    def _reload_styles(self, select: int | None = None) -> None:
        self._style_after_load = select
        self._load_styles()

    @work(thread=True, group="styles-load", exclusive=True, exit_on_error=False)
    def _load_styles(self) -> None:
        styles = list_styles(self.app.db)
        self.app.call_from_thread(self._styles_loaded, styles)

    def _styles_loaded(self, styles: list[StyleData]) -> None:
        self.style_items = styles
        listing = self.query_one("#style-list", OptionList)
        listing.clear_options()
        listing.add_options([Option(Content(s.name), id=f"style-{s.id}") for s in styles])
        if self._style_after_load is not None:
            listing.highlighted = listing.get_option_index(f"style-{self._style_after_load}")
            self._style_after_load = None
        elif styles and self._untouched_new_style():  # show the first style rather than an empty form
            listing.highlighted = 0

    def _untouched_new_style(self) -> bool:
        data = self.style_form()
        return data.id is None and not data.name and data.prompt == StyleData(None, "").prompt

    @on(OptionList.OptionHighlighted, "#style-list")
    @on(OptionList.OptionSelected, "#style-list")
    def _style_chosen(self, event: OptionList.OptionHighlighted | OptionList.OptionSelected) -> None:
        wanted = int((event.option.id or "style-0").split("-", 1)[1])
        style = next((s for s in self.style_items if s.id == wanted), None)
        if style is not None and (self.editing_style is None or self.editing_style.id != style.id):
            self._edit_style(style)

    def _edit_style(self, style: StyleData | None) -> None:
        self.editing_style = style or StyleData(None, "")
        title = f"Style {style.name!r}" if style and style.id else "New style (ctrl+s saves)"
        self.query_one("#style-title", Label).update(Content(title))
        with self.prevent(Input.Changed, TextArea.Changed):
            self.query_one("#style-name", Input).value = self.editing_style.name
            area = self.query_one("#style-prompt", TextArea)
            area.text = self.editing_style.prompt
            area.move_cursor(area.document.end)  # typing continues after the placeholder
            self.query_one("#style-negative", TextArea).text = self.editing_style.negative_prompt
        self._check_style()

    def style_form(self) -> StyleData:
        assert self.editing_style is not None
        return StyleData(self.editing_style.id, self.query_one("#style-name", Input).value,
                         self.query_one("#style-prompt", TextArea).text,
                         self.query_one("#style-negative", TextArea).text)

    @on(Input.Changed, "#style-name, #style-sample")
    @on(TextArea.Changed, "#style-prompt, #style-negative")
    def _style_typed(self) -> None:
        self._check_style()

    def _check_style(self) -> dict[str, str]:
        """Show each field's error next to it and the preview; returns the errors."""
        data = self.style_form()
        errors = field_errors(data.name, data.prompt, data.negative_prompt)
        # An unnamed new style is not an error until it is saved.
        shown = {k: v for k, v in errors.items() if not (k == "name" and not data.name and data.id is None)}
        for key in ("name", "prompt", "negative"):
            self.query_one(f"#style-{key}-error", Label).update(Content(shown.get(key, "")))
            widget = self.query_one(f"#style-{key}")
            widget.set_class(key in shown, "-invalid")
        preview = self.query_one("#style-preview", Static)
        if "prompt" in errors or "negative" in errors:
            preview.update("(no preview until the placeholder is fixed)")
        else:
            sample = self.query_one("#style-sample", Input).value
            prompt, negative = apply_style(data.prompt, data.negative_prompt, sample, "")
            preview.update(f"Prompt: {prompt}\nNegative: {negative or '(none)'}")
        return errors

    def _save_style(self) -> None:
        data = self.style_form()
        errors = self._check_style()
        if errors:
            for key, message in errors.items():  # a missing name is shown now that the user wants to save
                self.query_one(f"#style-{key}-error", Label).update(Content(message))
            self.notify("The style was not saved: fix the field marked in red.", severity="error")
            return
        self._store_style(data)

    @work(thread=True, group="styles-save", exit_on_error=False)
    def _store_style(self, data: StyleData) -> None:
        try:
            style_id = save_style_data(self.app.db, data)
        except StyleError as exc:
            self.app.call_from_thread(self._style_save_failed, str(exc))
            return
        self.app.call_from_thread(self._style_saved, data, style_id)

    def _style_save_failed(self, message: str) -> None:
        self.query_one("#style-name-error", Label).update(Content(message))

    def _style_saved(self, data: StyleData, style_id: int) -> None:
        data.id = style_id
        data.name = data.name.strip()
        self.editing_style = data
        self.query_one("#style-title", Label).update(Content(f"Style {data.name!r}"))
        self.notify(f"Saved style {data.name!r}")
        self._reload_styles(style_id)

    # ------------------------------------------------------------------ snippets

    def _reload_snippets(self, select: int | None = None) -> None:
        self._snippet_after_load = select
        self._load_snippets(self.snippet_sort)

    @work(thread=True, group="snippets-load", exclusive=True, exit_on_error=False)
    def _load_snippets(self, sort: str) -> None:
        snippets = list_snippets(self.app.db, sort)
        self.app.call_from_thread(self._snippets_loaded, snippets)

    def _snippets_loaded(self, snippets: list[SnippetData]) -> None:
        self.snippets = snippets
        table = self.query_one("#snippet-table", DataTable)
        keep = self._snippet_after_load or (self.snippet.id if self.snippet else None)
        table.clear()
        for s in snippets:
            text = " ".join(s.content.split())
            table.add_row(Content(s.label), Content(s.category), str(s.use_count),
                          Content(text[:80] + ("\u2026" if len(text) > 80 else "")), key=str(s.id))
        if keep is not None:
            try:
                table.move_cursor(row=table.get_row_index(str(keep)))
            except Exception:  # noqa: BLE001 - it was deleted meanwhile
                pass
        self._snippet_after_load = None

    def selected_snippet(self) -> SnippetData | None:
        table = self.query_one("#snippet-table", DataTable)
        if not self.snippets or table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((s for s in self.snippets if str(s.id) == key), None)

    @on(DataTable.RowHighlighted, "#snippet-table")
    def _snippet_highlighted(self, event: DataTable.RowHighlighted) -> None:
        snippet = next((s for s in self.snippets if str(s.id) == event.row_key.value), None)
        if snippet is not None and (self.snippet is None or self.snippet.id != snippet.id):
            self._edit_snippet(snippet)

    @on(DataTable.RowSelected, "#snippet-table")
    def _snippet_selected(self, event: DataTable.RowSelected) -> None:
        self.action_insert_snippet()

    def _edit_snippet(self, snippet: SnippetData | None) -> None:
        self.snippet = snippet or SnippetData(None, "", "")
        title = f"Snippet {snippet.label!r} (used {snippet.use_count}\u00d7)" if snippet and snippet.id \
            else "New snippet (ctrl+s saves)"
        self.query_one("#snippet-title", Label).update(Content(title))
        self.query_one("#snippet-label", Input).value = self.snippet.label
        self.query_one("#snippet-category", Input).value = self.snippet.category
        self.query_one("#snippet-content", TextArea).text = self.snippet.content
        self.query_one("#snippet-error", Label).update("")

    def _save_snippet(self) -> None:
        assert self.snippet is not None
        data = SnippetData(self.snippet.id, self.query_one("#snippet-label", Input).value,
                           self.query_one("#snippet-content", TextArea).text,
                           self.query_one("#snippet-category", Input).value, self.snippet.use_count)
        self._store_snippet(data)

    @work(thread=True, group="snippets-save", exit_on_error=False)
    def _store_snippet(self, data: SnippetData) -> None:
        try:
            snippet_id = save_snippet(self.app.db, data)
        except SnippetError as exc:
            self.app.call_from_thread(self.query_one("#snippet-error", Label).update, Content(str(exc)))
            return
        self.app.call_from_thread(self._snippet_saved, data, snippet_id)

    def _snippet_saved(self, data: SnippetData, snippet_id: int) -> None:
        data.id = snippet_id
        self.snippet = data
        self.query_one("#snippet-error", Label).update("")
        self.notify(f"Saved snippet {data.label.strip()!r}")
        self._reload_snippets(snippet_id)

    def action_insert_snippet(self) -> None:
        if not self.on_snippets:
            return
        snippet = self.selected_snippet()
        if snippet is None or snippet.id is None:
            self.notify("Choose a snippet to insert.", severity="warning")
            return
        self.run_worker(self._insert(snippet), group="snippets-insert", exit_on_error=False)

    async def _insert(self, snippet: SnippetData) -> None:
        self.app.open_in_generate({"insert": snippet.content})
        self._count_use(snippet.id)

    @work(thread=True, group="snippets-save", exit_on_error=False)
    def _count_use(self, snippet_id: int) -> None:
        uses = count_snippet_use(self.app.db, snippet_id)
        self.app.call_from_thread(self._use_counted, snippet_id, uses)

    def _use_counted(self, snippet_id: int, uses: int) -> None:
        if self.snippet is not None and self.snippet.id == snippet_id:
            self.snippet.use_count = uses
        self._reload_snippets(snippet_id)

    def action_toggle_sort(self) -> None:
        if not self.on_snippets:
            return
        self.snippet_sort = SNIPPET_SORTS[(SNIPPET_SORTS.index(self.snippet_sort) + 1) % len(SNIPPET_SORTS)]
        self.notify(f"Prompt library sorted by {self.snippet_sort}")
        self._reload_snippets()

    # ------------------------------------------------------------------ shared actions

    def action_new(self) -> None:
        if self.on_snippets:
            self._edit_snippet(None)
            self.query_one("#snippet-label", Input).focus()
        else:
            self._edit_style(None)
            self.query_one("#style-name", Input).focus()

    def action_save(self) -> None:
        if self.on_snippets:
            self._save_snippet()
        else:
            self._save_style()

    def action_delete(self) -> None:
        if self.on_snippets:
            snippet = self.selected_snippet()
            if snippet is None or snippet.id is None:
                self.notify("Choose a snippet to delete.", severity="warning")
                return
            self.app.push_screen(ConfirmDialog(f"Delete the snippet {snippet.label!r}?"),
                                 partial(self._delete_confirmed, "snippet", snippet.id))
        else:
            if self.editing_style is None or self.editing_style.id is None:
                self.notify("Choose a saved style to delete.", severity="warning")
                return
            self.app.push_screen(ConfirmDialog(f"Delete the style {self.editing_style.name!r}?"),
                                 partial(self._delete_confirmed, "style", self.editing_style.id))

    def _delete_confirmed(self, what: str, item_id: int, confirmed: bool | None) -> None:
        if confirmed:
            self._delete(what, item_id)

    @work(thread=True, group="styles-delete", exit_on_error=False)
    def _delete(self, what: str, item_id: int) -> None:
        if what == "style":
            delete_style(self.app.db, item_id)
        else:
            delete_snippet(self.app.db, item_id)
        self.app.call_from_thread(self._deleted, what)

    def _deleted(self, what: str) -> None:
        self.notify(f"Deleted the {what}")
        if what == "style":
            self._edit_style(None)
            self._reload_styles()
        else:
            self._edit_snippet(None)
            self._reload_snippets()

    def action_focus_list(self) -> None:
        self.query_one("#snippet-table" if self.on_snippets else "#style-list").focus()

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#styles-tabs", TabbedContent).active = tab
        self.call_after_refresh(self.action_focus_list)  # the pane is shown on the next refresh

    def action_toggle_tab(self) -> None:
        self.action_show_tab("tab-styles" if self.on_snippets else "tab-snippets")
