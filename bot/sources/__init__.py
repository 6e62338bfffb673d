"""Sales systems that send orders (Haravan, Sapo, KiotViet, Shopify, WooCommerce): one module
per platform holds its whole wire format (signature, handshake, payload mapping, admin steps);
webhook.py is the one HTTP inlet, settings.py the [[sources]] entries."""
