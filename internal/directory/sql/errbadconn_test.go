package sql_test

import "database/sql/driver"

var errBadConn = driver.ErrBadConn
