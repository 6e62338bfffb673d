"""The web chat's whole edge: the adapter, the WebSocket server, the page and the widget."""
