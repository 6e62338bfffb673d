"""The database: connection, ordered SQL migrations, repositories, report queries."""
