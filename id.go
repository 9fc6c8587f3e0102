package plait

import "regexp"

// IDRule says what a valid id is, for error messages.
const IDRule = "want 1 to 128 characters: ASCII letters, digits or ._:@+-, starting with a letter or digit"

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$`)

// ValidID reports whether s may be a command or aggregate id: 1 to 128
// letters, digits and ._:@+- not starting with punctuation. An application
// checks with it an id its data names, of an instance it refers to.
func ValidID(s string) bool { return idPattern.MatchString(s) }
