package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/plaithq/plait/engine"
	"github.com/plaithq/plait/internal/durable"
	"github.com/plaithq/plait/store/sqlite"
)

// runBackup is plait backup --to FILE: a consistent copy of the embedded
// store, taken while a server may be writing it.
func runBackup(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error {
	app := prog.app
	fs := flags(prog, "backup", "Writes a consistent copy of the embedded store (the SQLite file in --data) to a new file,\n"+
		"readable by its owner only, while a server may be serving it: every command is in it whole or not at all.\n"+
		"The copy is checked before it gets its name, and an existing file is never overwritten.\n"+
		"Backups into one directory take turns, and each removes the partial copies that backups cut short left there.\n"+
		"It holds the application's data, personal data, and the keys that seal it: keep it as safe as the store.\n"+
		"plait restore puts it back. Scaled out, back up PostgreSQL with its own tools.", stdout)
	var sf storeFlags
	sf.registerData(fs)
	to := fs.String("to", "", "the new `FILE` to write the backup to (required; its directory is made)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if *to == "" {
		return usageError{errors.New("--to: want the file to write the backup to")}
	}
	if err := sf.existing(app); err != nil {
		return err
	}
	release, err := lockBackups(filepath.Dir(*to))
	if err != nil {
		return err
	}
	defer release()
	removePartials(filepath.Dir(*to), stdout, stderr)
	info, err := sqlite.Backup(ctx, sf.path(app), *to)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s: %d bytes, log head %d\n", sf.path(app), *to, info.Bytes, info.Head)
	return nil
}

// lockBackups takes the lock of the backups into dir, made if missing:
// backups into one directory take turns, so that each may remove the
// partial copies that the ones cut short left there (none of which another
// backup is still writing). It returns the function that releases it.
func lockBackups(dir string) (release func(), err error) {
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("make the backup's directory: %w", err)
	}
	path := filepath.Join(dir, ".plait-backup.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the lock of backups: %w", err)
	}
	if held, err := tryLock(f); err != nil || held {
		f.Close()
		if held {
			return nil, fmt.Errorf("another plait backup is writing into %s: run this one once it ends", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// removePartials removes the partial copies that backups cut short left in
// dir, whose lock the caller holds, and says so.
func removePartials(dir string, stdout, stderr io.Writer) {
	partials, err := sqlite.PartialBackups(dir)
	if err != nil {
		fmt.Fprintf(stderr, "warning: %v\n", err)
	}
	for _, p := range partials {
		if err := os.Remove(p); err != nil {
			fmt.Fprintf(stderr, "warning: a partial copy left by a backup cut short stays: %v\n", err)
			continue
		}
		fmt.Fprintf(stdout, "removed %s, a partial copy left by a backup cut short\n", p)
	}
}

// runRestore is plait restore --from FILE: a backup in the place of the
// embedded store, while no server runs on it.
func runRestore(ctx context.Context, prog program, args []string, stdout, stderr io.Writer) error {
	app := prog.app
	fs := flags(prog, "restore", "Puts a backup made by plait backup in the place of the embedded store, while no server runs on it.\n"+
		"The store it replaces is moved aside, whole, beside it. The data subjects forgotten since the backup\n"+
		"was taken stay forgotten: their keys, which the backup still holds, are destroyed again, as the store\n"+
		"being replaced tells. Without that store (lost, or damaged), it says they must be forgotten again.\n"+
		"A backup that is not a sound store is refused, and nothing changes.", stdout)
	var sf storeFlags
	sf.registerData(fs)
	from := fs.String("from", "", "the backup `FILE` to restore (required; it is left as it is)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if *from == "" {
		return usageError{errors.New("--from: want the backup file to restore")}
	}
	if _, err := os.Stat(*from); err != nil {
		return fmt.Errorf("no backup: %w", err)
	}
	lock, err := lockData(sf.data, app.Name)
	if _, locked := lockedBy(err); locked {
		return fmt.Errorf("%w: stop it first to restore", err)
	}
	if err != nil {
		return err
	}
	defer lock.release()
	// A backup of another application's store would serve this one's
	// users another's data: refused before anything is changed.
	if got, err := sqlite.ApplicationOf(ctx, *from); err == nil && got != "" && got != app.Name {
		return fmt.Errorf("%w: %s is a backup of application %q, not %q: restore it with that application's program, or restore a backup of this one",
			engine.ErrOtherApplication, *from, got, app.Name)
	}
	r, err := sqlite.Restore(ctx, *from, sf.path(app))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s into %s: log head %d\n", *from, sf.path(app), r.Head)
	if r.Given > 0 {
		fmt.Fprintf(stdout, "new commits take positions after %d, the last the store it replaced gave, so that streams resumed from it miss none\n", r.Given)
	}
	if r.Replaced != "" {
		fmt.Fprintf(stdout, "the store it replaced is at %s (with its personal data: delete it once the restored store serves as it should)\n", r.Replaced)
	}
	if r.Regiven != nil {
		fmt.Fprintf(stderr, "warning: no store replaced could tell the positions given before the restore (%v): "+
			"new commits take positions after %d, which a store lost may have given: browsers open before the restore should reload\n", r.Regiven, r.Head)
	}
	if r.Unchecked != nil {
		fmt.Fprintf(stderr, "warning: the data subjects forgotten since the backup was taken are remembered again, "+
			"as the store it replaced could not tell them (%v): forget them again with %s forget SUBJECT\n", r.Unchecked, prog.name)
	} else {
		fmt.Fprintf(stdout, "data subjects forgotten since the backup, kept forgotten (their keys destroyed again): %d\n", r.Reforgotten)
	}
	return nil
}
