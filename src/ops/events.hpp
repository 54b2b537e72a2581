// MESSAGE_IDs of lifecycle events in the journal (sd-journal(3)); each one is documented
// in units/bartl.catalog. Never change an id once released: operators filter on them.
#pragma once

namespace bartl::event {

inline constexpr const char* decision = "5fee94a34590477d9f2a24f6db525c5f";
inline constexpr const char* init_started = "c2dfefaf679f4b32967d0dc87a8c630d";
inline constexpr const char* init_finished = "f2517e6166be438db6e66aa8b8e2c4b5";
inline constexpr const char* restore_started = "ae3b359e9aa546c488c35dfae2e5a13b";
inline constexpr const char* restore_finished = "714daf0ff69945ccab1fe5f189a8e79d";
inline constexpr const char* restore_rejected = "ad9338c9394e43e98799ddddb44c7315";
inline constexpr const char* migrate_started = "dbd4ad7c874741489388e8d42899425c";
inline constexpr const char* migrate_finished = "33cf9627bfa1417fb0bfe64fa481310c";
inline constexpr const char* migrate_failed = "49d3e90dafb443709953f8141af7d941";
inline constexpr const char* downgrade_refused = "4b3adbfafed0434791c41226db87c8b5";
inline constexpr const char* foreign_refused = "1680e6d149dc49368463b6d9102799da";
inline constexpr const char* backup_finished = "1b5f3a7c2e4d4b8f9a0c6d2e8f1a3b5c";
inline constexpr const char* backup_failed = "ea099ff32d2e454c89a6b6b6d744874d";
inline constexpr const char* serving = "e80653f4c5ef429c94f22135a1d9db43";
inline constexpr const char* lifecycle_failed = "bd490eeec13445b68519ab03c2583ccd";

}  // namespace bartl::event
