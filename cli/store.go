package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/plaithq/plait"
	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/store/sqlite"
)

// storeFlags are the flags that choose and open the embedded store.
type storeFlags struct {
	data        string
	synchronous string
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	s.registerData(fs)
	fs.StringVar(&s.synchronous, "synchronous", "FULL", "SQLite synchronous mode: FULL survives power loss, NORMAL only a process crash")
}

// registerData registers --data alone, for the commands that work on the
// store's file without opening it as a store.
func (s *storeFlags) registerData(fs *flag.FlagSet) {
	s.synchronous = "FULL"
	fs.StringVar(&s.data, "data", "./plait-data", "directory of the embedded store; the SQLite file is `DIR`/APP.db")
}

// check refuses flag values that cannot work, before anything is touched.
func (s *storeFlags) check() error {
	if s.data == "" {
		return usageError{errors.New("--data: want a directory")}
	}
	if err := sqlite.CheckSynchronous(s.synchronous); err != nil {
		return usageError{fmt.Errorf("--%w", err)}
	}
	return nil
}

// path is the SQLite file of app.
func (s *storeFlags) path(app plait.App) string {
	return filepath.Join(s.data, app.Name+".db")
}

// existing checks that app's store is there, for the commands that read or
// change one (inspect, replay, forget): only serve creates a store, and an
// empty one made by a mistyped --data would be no help.
func (s *storeFlags) existing(app plait.App) error {
	if fi, err := os.Stat(s.data); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no data directory %s: give --data the directory plait serve uses", s.data)
	} else if err == nil && !fi.IsDir() {
		return fmt.Errorf("--data %s is a file: give it the directory plait serve uses", s.data)
	}
	path := s.path(app)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no store %s in the data directory: plait serve --data %s creates it", filepath.Base(path), s.data)
	} else if err != nil {
		return fmt.Errorf("open store: %w", dataDirProblem(s.data, err))
	}
	return nil
}

// dataDirProblem adds to err, a failure to use the data directory dir,
// what is wrong with the directory when the file system says: a file
// where a directory should be, or a directory this user may not write.
func dataDirProblem(dir string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w (--data %s: a file stands where a directory should be)", err, dir)
	case errors.Is(err, fs.ErrPermission):
		who := "this user"
		if u, uerr := user.Current(); uerr == nil {
			who = "user " + u.Username
		}
		return fmt.Errorf("%w (--data %s: %s may not write there)", err, dir, who)
	}
	return err
}

// open opens the embedded store of app and creates its list indexes.
func (s *storeFlags) open(ctx context.Context, app plait.App) (*sqlite.Store, error) {
	st, err := sqlite.Open(ctx, s.path(app), sqlite.Options{Synchronous: s.synchronous, Application: app.Name})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", ownFile(err))
	}
	if err := st.EnsureIndexes(ctx, app.Aggregates); err != nil {
		st.Close()
		return nil, fmt.Errorf("create indexes: %w", err)
	}
	return st, nil
}

// read opens the embedded store of app only to read it: inspect changes
// nothing, not even a missing list index, in a store a server may be
// serving.
func (s *storeFlags) read(ctx context.Context, app plait.App) (*sqlite.Store, error) {
	st, err := sqlite.Open(ctx, s.path(app), sqlite.Options{ReadOnly: true, Application: app.Name})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", ownFile(err))
	}
	return st, nil
}

// ownFile adds to err, when it says the store is another application's
// (engine.ErrOtherApplication), what to do: each application's store is a
// file of its own, named by the application, so this one was copied or
// restored there by mistake.
func ownFile(err error) error {
	if errors.Is(err, engine.ErrOtherApplication) {
		return fmt.Errorf("%w: move the file aside (each application keeps its store in a file of its own, APP.db)", err)
	}
	return err
}

// ownSchema adds to err, when it says the schema is another application's
// (engine.ErrOtherApplication), what to do.
func ownSchema(err error) error {
	if errors.Is(err, engine.ErrOtherApplication) {
		return fmt.Errorf("%w: give each application a --pg-schema of its own", err)
	}
	return err
}

// withEngine opens app's embedded store, runs an engine on it without an
// HTTP server, calls fn once the engine takes commands, then stops the
// engine and closes the store. The caller holds the data directory's lock.
func (s *storeFlags) withEngine(ctx context.Context, app plait.App, stderr io.Writer, fn func(e *engine.Engine) error) error {
	st, err := s.open(ctx, app)
	if err != nil {
		return err
	}
	defer st.Close()
	e, err := engine.New(app, st, engine.Options{Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	defer func() { stop(); <-done }()
	select {
	case <-e.Ready():
	case err := <-done:
		done <- err
		return fmt.Errorf("engine: %w", err)
	}
	return fn(e)
}

// openToOthers returns those of the data directory dir and the files of
// the store at path (its write-ahead log and index included) whose mode
// lets users other than the owner read or write them: a store made by an
// early release, or copied in, say. (A directory others may only pass
// through, 0711, keeps its files theirs.) Windows, whose files have no
// such mode, has none.
func openToOthers(dir, path string) []string {
	if runtime.GOOS == "windows" {
		return nil
	}
	var open []string
	for _, p := range []string{dir, path, path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o066 != 0 {
			open = append(open, fmt.Sprintf("%s (%04o)", p, fi.Mode().Perm()))
		}
	}
	return open
}
