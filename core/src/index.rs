//! TODO(owner): being written.
