"""Terminal graphics: asking the terminal what it shows (`detect`), encoding pictures for kitty, sixel or half
cells (`kitty`, `sixel`, `picture.prepare`), and drawing them from Textual widgets (`picture.Graphics`)."""
