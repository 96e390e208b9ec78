// The system SQLite (Debian's libsqlite3-dev; part of the SDK on Apple platforms).
#include <sqlite3.h>
