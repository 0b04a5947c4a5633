def test_x():
    import migrate.core.errors
