package sql

// Test hooks, for the tests in package sql_test.

// SetHook sets the function called at each step of a write.
func SetHook(d *DB, f func(step string) error) { d.hook = f }

// DropIdle closes the pool's idle connections.
func DropIdle(d *DB) { d.dropIdle() }
