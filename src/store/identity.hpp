// The store identity and writer record on a store (core/store_identity.hpp for the data):
// reading it, --init-store, and the writer claim that fences a split brain (invariant 9).
#pragma once

#include <optional>
#include <string>

#include "core/store_identity.hpp"
#include "store/store.hpp"

namespace bartl {

/// The identity as read, with the etag a conditional update compares against.
struct IdentityRead {
    StoreIdentity identity;
    std::string etag;
};

/// Reads bartl-store.json of `store` for `app`. Throws StoreNotInitialized when the location
/// holds none (the message names `init_commands`, the commands that create it as the
/// operator runs bartld: default `bartld --instance INSTANCE --init-store`) or holds another
/// app's; RuntimeError when it does not parse (never taken as "none"); StoreUnavailable when
/// the store does not answer.
IdentityRead read_store_identity(Store& store, const Context& ctx, const std::string& app,
                                 const std::string& instance, const std::string& init_commands = "");

/// What init_store() did.
struct InitStoreResult {
    StoreIdentity identity;
    bool created = false;  ///< false: it existed already for this app (nothing changed)
};

/// Creates the store identity for `app` (bartld --init-store, bartlctl init-store), written
/// only if absent, so two hosts cannot both create one. Idempotent for the same app. Throws
/// RuntimeError when the store belongs to another app, StoreUnavailable.
InitStoreResult init_store(Store& store, const Context& ctx, const std::string& app);

/// A writer claim as the store holds it.
struct StoreClaim {
    std::string store_id;  ///< the identity's store_id
    StoreWriter writer;    ///< the writer now recorded
};

/// Takes the store over for state `state_id` (a restore or init committed it): the writer
/// becomes this state with generation + 1, by a compare-and-swap on the identity (retried
/// when another writer changed it meanwhile). Returns the claim. Throws
/// StoreNotInitialized (naming `init_commands` as read_store_identity()), StoreUnavailable,
/// PreconditionFailed after repeated races.
StoreClaim take_over_store(Store& store, const Context& ctx, const std::string& app, const std::string& instance,
                            const std::string& state_id, const std::string& init_commands = "");

/// Whether state `state_id` is fenced, from one read of bartl-store.json, never writing: the
/// same message require_writer() throws (naming the writer that took the store over) when
/// another state is the recorded writer, std::nullopt when `state_id` is or no writer is
/// recorded yet. Throws StoreNotInitialized, StoreUnavailable, RuntimeError (a damaged
/// identity) as read_store_identity().
std::optional<std::string> fenced_by(Store& store, const Context& ctx, const std::string& app,
                                     const std::string& instance, const std::string& state_id);

/// Before a backup or retention: returns the claim when `state_id` is the writer. A store nobody
/// has claimed yet is claimed (generation 1). With `adopt_legacy_store` (a state upgraded
/// from an older bartl), a store without identity that holds backup sidecars of `app` is an
/// older bartl's store: its identity is created and claimed. Throws FencedError naming the
/// writer that took the store over and what to do; StoreNotInitialized (naming
/// `init_commands` as read_store_identity()), StoreUnavailable.
StoreClaim require_writer(Store& store, const Context& ctx, const std::string& app, const std::string& instance,
                           const std::string& state_id, bool adopt_legacy_store = false,
                           const std::string& init_commands = "");

}  // namespace bartl
