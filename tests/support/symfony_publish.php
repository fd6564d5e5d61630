<?php
// Publishes updates to a Mercure hub exactly as a Symfony app does: symfony/mercure's `Hub`
// with a static token (Debian's php-symfony-mercure, its autoloaders under /usr/share/php).
//
// Usage: php symfony_publish.php HUB_URL JWT < updates.json
// updates.json: [{"topics": [...], "data": "...", "private": false, "id": null, "type": null,
// "retry": null}, ...]. Prints one JSON line per update: {"id": "..."} or {"error": "..."}.

declare(strict_types=1);

set_include_path('/usr/share/php' . PATH_SEPARATOR . get_include_path());
require_once 'Symfony/Component/Mercure/autoload.php';

use Symfony\Component\Mercure\Hub;
use Symfony\Component\Mercure\Jwt\StaticTokenProvider;
use Symfony\Component\Mercure\Update;

[, $url, $jwt] = $argv;
$hub = new Hub($url, new StaticTokenProvider($jwt));
foreach (json_decode(stream_get_contents(STDIN), true, 16, JSON_THROW_ON_ERROR) as $u) {
    $update = new Update(
        $u['topics'],
        $u['data'] ?? '',
        $u['private'] ?? false,
        $u['id'] ?? null,
        $u['type'] ?? null,
        $u['retry'] ?? null
    );
    try {
        echo json_encode(['id' => $hub->publish($update)]), "\n";
    } catch (Throwable $error) {
        echo json_encode(['error' => get_class($error) . ': ' . $error->getMessage()]), "\n";
    }
}
